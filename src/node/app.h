/*
 * app — wiring: starts every subsystem of a node in order and stops them in
 * reverse. refuged.c owns the process concerns (arguments, signals); tests
 * and benchmarks can start a whole node in-process through this.
 */
#ifndef REFUGE_NODE_APP_H
#define REFUGE_NODE_APP_H

#include "node/node.h"

struct app {
    struct node node;
};

/* Starts the node described by conf (which must outlive the app). */
int app_start(struct app *a, struct refuge_conf *conf, char *err, size_t errlen);
/* Graceful stop: quiesce HTTP, wait for in-flight requests, close the store. */
void app_stop(struct app *a);

#endif
