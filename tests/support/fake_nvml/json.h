/* A small JSON reader for the fake NVML library's scenario files.
 * Parses a whole document into a tree; objects keep their keys in order. */
#ifndef FAKE_NVML_JSON_H
#define FAKE_NVML_JSON_H

#include <stddef.h>

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json {
    enum json_type type;
    double number;       /* JSON_NUMBER; JSON_BOOL: 0 or 1 */
    char *string;        /* JSON_STRING (NUL-terminated, UTF-8) */
    size_t count;        /* JSON_ARRAY / JSON_OBJECT: number of items */
    char **keys;         /* JSON_OBJECT: keys[i] names items[i] */
    struct json **items; /* JSON_ARRAY / JSON_OBJECT */
};

/* Parses text; on error returns NULL and writes a message with the byte offset into err. */
struct json *json_parse(const char *text, char *err, size_t err_size);
void json_free(struct json *value);

/* Lookups return NULL when the key/index is absent or the value has another type. */
const struct json *json_get(const struct json *object, const char *key);
const struct json *json_at(const struct json *array, size_t index);
const char *json_string(const struct json *object, const char *key);
/* number under key, or fallback when absent or not a number */
double json_number(const struct json *object, const char *key, double fallback);
/* 1 when the array under key holds the string needle */
int json_array_has(const struct json *object, const char *key, const char *needle);

#endif
