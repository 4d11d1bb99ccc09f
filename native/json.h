/* A small JSON reader for the sandbox specification: the whole document is
 * parsed into a tree; strings may not contain NUL (they become C strings). */
#ifndef HOIST_JSON_H
#define HOIST_JSON_H
#include <stddef.h>

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jval {
  jtype t;
  int b;
  double num;
  char *str;
  size_t n;
  struct jval **items;
  char **keys; /* J_OBJ only, parallel to items */
} jval;

/* Parses `s` (length `len`); on failure returns NULL and points *err at a static message. */
jval *json_parse(const char *s, size_t len, const char **err);
/* Member of an object, or NULL when absent or when `o` is not an object. */
jval *jget(const jval *o, const char *key);
#endif
