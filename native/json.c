#include "json.h"
#include <stdlib.h>
#include <string.h>

struct parser {
  const char *s;
  size_t len, pos;
  int depth;
  const char *err;
};

#define MAX_DEPTH 64

static void *xcalloc(size_t n, size_t sz) {
  void *p = calloc(n ? n : 1, sz);
  if (!p) abort();
  return p;
}

static void skip_ws(struct parser *p) {
  while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' || p->s[p->pos] == '\r')) p->pos++;
}

static jval *fail(struct parser *p, const char *msg) {
  if (!p->err) p->err = msg;
  return NULL;
}

static int hex4(struct parser *p, unsigned *out) {
  unsigned v = 0;
  if (p->pos + 4 > p->len) return -1;
  for (int i = 0; i < 4; i++) {
    char c = p->s[p->pos++];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

static char *parse_string(struct parser *p) {
  /* caller saw the opening quote */
  size_t cap = 32, n = 0;
  char *out = xcalloc(cap, 1);
  p->pos++;
  for (;;) {
    if (p->pos >= p->len) { free(out); fail(p, "unterminated string"); return NULL; }
    unsigned char c = (unsigned char)p->s[p->pos++];
    unsigned cp;
    char buf[4];
    size_t bl = 0;
    if (c == '"') break;
    if (c < 0x20) { free(out); fail(p, "control character in string"); return NULL; }
    if (c != '\\') { buf[0] = (char)c; bl = 1; }
    else {
      if (p->pos >= p->len) { free(out); fail(p, "bad escape"); return NULL; }
      char e = p->s[p->pos++];
      switch (e) {
        case '"': buf[0] = '"'; bl = 1; break;
        case '\\': buf[0] = '\\'; bl = 1; break;
        case '/': buf[0] = '/'; bl = 1; break;
        case 'b': buf[0] = '\b'; bl = 1; break;
        case 'f': buf[0] = '\f'; bl = 1; break;
        case 'n': buf[0] = '\n'; bl = 1; break;
        case 'r': buf[0] = '\r'; bl = 1; break;
        case 't': buf[0] = '\t'; bl = 1; break;
        case 'u':
          if (hex4(p, &cp)) { free(out); fail(p, "bad \\u escape"); return NULL; }
          if (cp >= 0xd800 && cp < 0xdc00) {
            unsigned lo;
            if (p->pos + 2 > p->len || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u') { free(out); fail(p, "lone surrogate"); return NULL; }
            p->pos += 2;
            if (hex4(p, &lo) || lo < 0xdc00 || lo > 0xdfff) { free(out); fail(p, "bad surrogate pair"); return NULL; }
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          } else if (cp >= 0xdc00 && cp < 0xe000) { free(out); fail(p, "lone surrogate"); return NULL; }
          if (cp == 0) { free(out); fail(p, "NUL in string"); return NULL; }
          if (cp < 0x80) { buf[0] = (char)cp; bl = 1; }
          else if (cp < 0x800) { buf[0] = (char)(0xc0 | (cp >> 6)); buf[1] = (char)(0x80 | (cp & 0x3f)); bl = 2; }
          else if (cp < 0x10000) { buf[0] = (char)(0xe0 | (cp >> 12)); buf[1] = (char)(0x80 | ((cp >> 6) & 0x3f)); buf[2] = (char)(0x80 | (cp & 0x3f)); bl = 3; }
          else { buf[0] = (char)(0xf0 | (cp >> 18)); buf[1] = (char)(0x80 | ((cp >> 12) & 0x3f)); buf[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); buf[3] = (char)(0x80 | (cp & 0x3f)); bl = 4; }
          break;
        default: free(out); fail(p, "bad escape"); return NULL;
      }
    }
    if (n + bl + 1 > cap) {
      while (n + bl + 1 > cap) cap *= 2;
      char *o2 = realloc(out, cap);
      if (!o2) abort();
      out = o2;
    }
    memcpy(out + n, buf, bl);
    n += bl;
  }
  out[n] = 0;
  return out;
}

static jval *parse_value(struct parser *p);

static void push(jval *v, jval *item, char *key, size_t *cap) {
  if (v->n == *cap) {
    *cap = *cap ? *cap * 2 : 4;
    v->items = realloc(v->items, *cap * sizeof *v->items);
    if (!v->items) abort();
    if (v->t == J_OBJ) { v->keys = realloc(v->keys, *cap * sizeof *v->keys); if (!v->keys) abort(); }
  }
  if (v->t == J_OBJ) v->keys[v->n] = key;
  v->items[v->n++] = item;
}

static jval *parse_value(struct parser *p) {
  skip_ws(p);
  if (p->pos >= p->len) return fail(p, "unexpected end of input");
  char c = p->s[p->pos];
  jval *v = xcalloc(1, sizeof *v);
  if (c == '{' || c == '[') {
    size_t cap = 0;
    char close = c == '{' ? '}' : ']';
    if (++p->depth > MAX_DEPTH) return fail(p, "nesting too deep");
    v->t = c == '{' ? J_OBJ : J_ARR;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) { p->pos++; p->depth--; return v; }
    for (;;) {
      char *key = NULL;
      skip_ws(p);
      if (v->t == J_OBJ) {
        if (p->pos >= p->len || p->s[p->pos] != '"') return fail(p, "expected a key");
        if (!(key = parse_string(p))) return NULL;
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != ':') return fail(p, "expected ':'");
        p->pos++;
      }
      jval *item = parse_value(p);
      if (!item) return NULL;
      push(v, item, key, &cap);
      skip_ws(p);
      if (p->pos >= p->len) return fail(p, "unexpected end of input");
      if (p->s[p->pos] == ',') { p->pos++; continue; }
      if (p->s[p->pos] == close) { p->pos++; break; }
      return fail(p, "expected ',' or a closing bracket");
    }
    p->depth--;
    return v;
  }
  if (c == '"') {
    v->t = J_STR;
    return (v->str = parse_string(p)) ? v : NULL;
  }
  if (p->len - p->pos >= 4 && !strncmp(p->s + p->pos, "true", 4)) { v->t = J_BOOL; v->b = 1; p->pos += 4; return v; }
  if (p->len - p->pos >= 5 && !strncmp(p->s + p->pos, "false", 5)) { v->t = J_BOOL; p->pos += 5; return v; }
  if (p->len - p->pos >= 4 && !strncmp(p->s + p->pos, "null", 4)) { v->t = J_NULL; p->pos += 4; return v; }
  if (c == '-' || (c >= '0' && c <= '9')) {
    char tmp[64];
    size_t k = 0;
    while (p->pos < p->len && k < sizeof tmp - 1 && strchr("+-0123456789.eE", p->s[p->pos])) tmp[k++] = p->s[p->pos++];
    tmp[k] = 0;
    char *end;
    v->t = J_NUM;
    v->num = strtod(tmp, &end);
    if (*end) return fail(p, "bad number");
    return v;
  }
  return fail(p, "unexpected character");
}

jval *json_parse(const char *s, size_t len, const char **err) {
  struct parser p = { s, len, 0, 0, NULL };
  jval *v = parse_value(&p);
  if (v) {
    skip_ws(&p);
    if (p.pos != p.len) { v = NULL; fail(&p, "trailing data after the document"); }
  }
  if (!v && err) *err = p.err ? p.err : "invalid JSON";
  return v;
}

jval *jget(const jval *o, const char *key) {
  if (!o || o->t != J_OBJ) return NULL;
  for (size_t i = 0; i < o->n; i++)
    if (!strcmp(o->keys[i], key)) return o->items[i];
  return NULL;
}
