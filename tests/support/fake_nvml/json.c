/* A small recursive-descent JSON reader (RFC 8259) for scenario files. */
#include "json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

struct parser {
    const char *text;
    size_t pos;
    char *err;
    size_t err_size;
    int failed;
};

static void fail(struct parser *p, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = 1;
    int n = snprintf(p->err, p->err_size, "offset %zu: ", p->pos);
    if (n < 0 || (size_t)n >= p->err_size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->err_size - (size_t)n, fmt, ap);
    va_end(ap);
}

static void skip_space(struct parser *p)
{
    while (p->text[p->pos] == ' ' || p->text[p->pos] == '\t' || p->text[p->pos] == '\n' || p->text[p->pos] == '\r')
        p->pos++;
}

static struct json *new_value(enum json_type type)
{
    struct json *v = calloc(1, sizeof(*v));
    if (v)
        v->type = type;
    return v;
}

static int append(struct json *container, char *key, struct json *item)
{
    char **keys = container->keys;
    if (container->type == JSON_OBJECT) {
        keys = realloc(container->keys, (container->count + 1) * sizeof(*keys));
        if (!keys)
            return -1;
        container->keys = keys;
        keys[container->count] = key;
    }
    struct json **items = realloc(container->items, (container->count + 1) * sizeof(*items));
    if (!items)
        return -1;
    container->items = items;
    items[container->count++] = item;
    return 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static long read_hex4(struct parser *p)
{
    long code = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(p->text[p->pos]);
        if (d < 0) {
            fail(p, "bad \\u escape");
            return -1;
        }
        code = code * 16 + d;
        p->pos++;
    }
    return code;
}

static size_t put_utf8(char *out, unsigned long code)
{
    if (code < 0x80) {
        out[0] = (char)code;
        return 1;
    }
    if (code < 0x800) {
        out[0] = (char)(0xC0 | (code >> 6));
        out[1] = (char)(0x80 | (code & 0x3F));
        return 2;
    }
    if (code < 0x10000) {
        out[0] = (char)(0xE0 | (code >> 12));
        out[1] = (char)(0x80 | ((code >> 6) & 0x3F));
        out[2] = (char)(0x80 | (code & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (code >> 18));
    out[1] = (char)(0x80 | ((code >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((code >> 6) & 0x3F));
    out[3] = (char)(0x80 | (code & 0x3F));
    return 4;
}

/* Reads a string starting at the opening quote; returns a malloc'ed copy. */
static char *parse_string_raw(struct parser *p)
{
    p->pos++; /* opening quote */
    size_t start = p->pos;
    size_t cap = 16;
    /* Escapes never expand: the decoded string is at most as long as the source. */
    while (p->text[p->pos] && p->text[p->pos] != '"') {
        if (p->text[p->pos] == '\\' && p->text[p->pos + 1])
            p->pos++;
        p->pos++;
    }
    if (!p->text[p->pos]) {
        fail(p, "unterminated string");
        return NULL;
    }
    cap += p->pos - start;
    char *out = malloc(cap);
    if (!out) {
        fail(p, "out of memory");
        return NULL;
    }
    size_t n = 0;
    p->pos = start;
    while (p->text[p->pos] != '"') {
        unsigned char c = (unsigned char)p->text[p->pos];
        if (c < 0x20) {
            fail(p, "control character in string");
            free(out);
            return NULL;
        }
        if (c != '\\') {
            out[n++] = (char)c;
            p->pos++;
            continue;
        }
        p->pos++;
        char e = p->text[p->pos++];
        switch (e) {
        case '"': out[n++] = '"'; break;
        case '\\': out[n++] = '\\'; break;
        case '/': out[n++] = '/'; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u': {
            long code = read_hex4(p);
            if (code < 0)
                break;
            if (code >= 0xD800 && code <= 0xDBFF && p->text[p->pos] == '\\' && p->text[p->pos + 1] == 'u') {
                p->pos += 2;
                long low = read_hex4(p);
                if (low < 0xDC00 || low > 0xDFFF) {
                    fail(p, "unpaired surrogate in \\u escape");
                    break;
                }
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
            }
            n += put_utf8(out + n, (unsigned long)code);
            break;
        }
        default:
            p->pos--;
            fail(p, "bad escape \\%c", e);
        }
        if (p->failed) {
            free(out);
            return NULL;
        }
    }
    p->pos++; /* closing quote */
    out[n] = '\0';
    return out;
}

static struct json *parse_value(struct parser *p, int depth);

static struct json *parse_container(struct parser *p, int depth, enum json_type type)
{
    char close = type == JSON_OBJECT ? '}' : ']';
    struct json *v = new_value(type);
    if (!v) {
        fail(p, "out of memory");
        return NULL;
    }
    p->pos++;
    skip_space(p);
    if (p->text[p->pos] == close) {
        p->pos++;
        return v;
    }
    for (;;) {
        char *key = NULL;
        skip_space(p);
        if (type == JSON_OBJECT) {
            if (p->text[p->pos] != '"') {
                fail(p, "expected a string key");
                break;
            }
            key = parse_string_raw(p);
            if (!key)
                break;
            skip_space(p);
            if (p->text[p->pos] != ':') {
                fail(p, "expected ':' after key \"%s\"", key);
                free(key);
                break;
            }
            p->pos++;
        }
        struct json *item = parse_value(p, depth + 1);
        if (!item || append(v, key, item) != 0) {
            free(key);
            json_free(item);
            fail(p, "out of memory");
            break;
        }
        skip_space(p);
        if (p->text[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->text[p->pos] == close) {
            p->pos++;
            return v;
        }
        fail(p, "expected ',' or '%c'", close);
        break;
    }
    json_free(v);
    return NULL;
}

static struct json *parse_number(struct parser *p)
{
    const char *s = p->text + p->pos;
    size_t i = 0;
    if (s[i] == '-')
        i++;
    if (s[i] == '0')
        i++;
    else if (s[i] >= '1' && s[i] <= '9')
        while (s[i] >= '0' && s[i] <= '9')
            i++;
    else {
        fail(p, "unexpected character '%c'", s[0] ? s[0] : '?');
        return NULL;
    }
    if (s[i] == '.') {
        i++;
        if (!(s[i] >= '0' && s[i] <= '9')) {
            fail(p, "digit expected after '.'");
            return NULL;
        }
        while (s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (s[i] == 'e' || s[i] == 'E') {
        i++;
        if (s[i] == '+' || s[i] == '-')
            i++;
        if (!(s[i] >= '0' && s[i] <= '9')) {
            fail(p, "digit expected in exponent");
            return NULL;
        }
        while (s[i] >= '0' && s[i] <= '9')
            i++;
    }
    struct json *v = new_value(JSON_NUMBER);
    if (!v) {
        fail(p, "out of memory");
        return NULL;
    }
    errno = 0;
    v->number = strtod(s, NULL);
    p->pos += i;
    return v;
}

static int take_word(struct parser *p, const char *word)
{
    size_t n = strlen(word);
    if (strncmp(p->text + p->pos, word, n) != 0)
        return 0;
    p->pos += n;
    return 1;
}

static struct json *parse_value(struct parser *p, int depth)
{
    if (depth > JSON_MAX_DEPTH) {
        fail(p, "nested deeper than %d", JSON_MAX_DEPTH);
        return NULL;
    }
    skip_space(p);
    char c = p->text[p->pos];
    struct json *v = NULL;
    switch (c) {
    case '{':
        return parse_container(p, depth, JSON_OBJECT);
    case '[':
        return parse_container(p, depth, JSON_ARRAY);
    case '"': {
        char *s = parse_string_raw(p);
        if (!s)
            return NULL;
        v = new_value(JSON_STRING);
        if (!v) {
            free(s);
            fail(p, "out of memory");
            return NULL;
        }
        v->string = s;
        return v;
    }
    case 't':
    case 'f':
        if (take_word(p, "true") || take_word(p, "false")) {
            v = new_value(JSON_BOOL);
            if (v)
                v->number = c == 't';
            return v;
        }
        break;
    case 'n':
        if (take_word(p, "null"))
            return new_value(JSON_NULL);
        break;
    case '\0':
        fail(p, "unexpected end of input");
        return NULL;
    default:
        return parse_number(p);
    }
    fail(p, "unexpected character '%c'", c);
    return NULL;
}

struct json *json_parse(const char *text, char *err, size_t err_size)
{
    struct parser p = {text, 0, err, err_size, 0};
    struct json *v = parse_value(&p, 0);
    if (v) {
        skip_space(&p);
        if (p.text[p.pos] != '\0') {
            fail(&p, "trailing characters after the document");
            json_free(v);
            v = NULL;
        }
    }
    if (!v && !p.failed)
        fail(&p, "out of memory");
    return v;
}

void json_free(struct json *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->count; i++) {
        if (v->keys)
            free(v->keys[i]);
        json_free(v->items[i]);
    }
    free(v->keys);
    free(v->items);
    free(v->string);
    free(v);
}

const struct json *json_get(const struct json *object, const char *key)
{
    if (!object || object->type != JSON_OBJECT)
        return NULL;
    for (size_t i = 0; i < object->count; i++)
        if (strcmp(object->keys[i], key) == 0)
            return object->items[i];
    return NULL;
}

const struct json *json_at(const struct json *array, size_t index)
{
    if (!array || array->type != JSON_ARRAY || index >= array->count)
        return NULL;
    return array->items[index];
}

const char *json_string(const struct json *object, const char *key)
{
    const struct json *v = json_get(object, key);
    return v && v->type == JSON_STRING ? v->string : NULL;
}

double json_number(const struct json *object, const char *key, double fallback)
{
    const struct json *v = json_get(object, key);
    return v && (v->type == JSON_NUMBER || v->type == JSON_BOOL) ? v->number : fallback;
}

int json_array_has(const struct json *object, const char *key, const char *needle)
{
    const struct json *list = json_get(object, key);
    if (!list || list->type != JSON_ARRAY)
        return 0;
    for (size_t i = 0; i < list->count; i++)
        if (list->items[i]->type == JSON_STRING && strcmp(list->items[i]->string, needle) == 0)
            return 1;
    return 0;
}
