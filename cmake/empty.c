/* Placeholder so a layer library with no sources yet still builds. */
typedef int refuge_empty_translation_unit;
