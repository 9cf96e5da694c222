/* refuged — placeholder until the node wiring lands. */
int main(void) { return 0; }
