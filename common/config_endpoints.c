/* The schema of endpoints[] and handlers[] in endpoints.yaml: their key
 * tables, the setters of their own value kinds (method, mode, path, JSON
 * Schemas, content types, files), their defaults and the checks of one
 * endpoint that involve several of its keys.
 */
#include "config_int.h"

#include "jsonschema.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
static const char *const modes[] = {"publish", "rpc"};

static void set_method(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                       void *base) {
    char up[16], t[96];
    const char *s;
    size_t i;

    if (!cfg_scalar_ok(ld, k, v, "an HTTP method"))
        return;
    for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (strcasecmp(v->value, methods[i]) == 0) {
            cfg_store_str(ld, FIELD(base, k->off, char *), methods[i]);
            return;
        }
    }
    snprintf(up, sizeof(up), "%s", v->value);
    for (i = 0; up[i]; i++)
        if (up[i] >= 'a' && up[i] <= 'z')
            up[i] = (char)(up[i] - 'a' + 'A');
    s = strlen(v->value) < sizeof(up) ? cfg_suggest(up, methods, 5) : NULL;
    if (s)
        cfg_errf(ld, v, "unknown method \"%s\" (did you mean \"%s\"?)",
                 cfg_quote(v->value, t, sizeof(t)), s);
    else
        cfg_errf(ld, v, "unknown method \"%s\" (expected GET, POST, PUT, PATCH or DELETE)",
                 cfg_quote(v->value, t, sizeof(t)));
}

static void set_mode(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                     void *base) {
    char t[96];
    const char *s;

    if (!cfg_scalar_ok(ld, k, v, "publish or rpc"))
        return;
    if (strcmp(v->value, "publish") == 0) {
        *FIELD(base, k->off, enum cfg_mode) = CFG_MODE_PUBLISH;
        return;
    }
    if (strcmp(v->value, "rpc") == 0) {
        *FIELD(base, k->off, enum cfg_mode) = CFG_MODE_RPC;
        return;
    }
    s = cfg_suggest(v->value, modes, 2);
    if (s)
        cfg_errf(ld, v, "unknown mode \"%s\" (did you mean \"%s\"?)",
                 cfg_quote(v->value, t, sizeof(t)), s);
    else
        cfg_errf(ld, v, "unknown mode \"%s\" (expected publish or rpc)",
                 cfg_quote(v->value, t, sizeof(t)));
}

static bool is_param_name(const char *s, size_t n) {
    size_t i;

    if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return false;
    for (i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

/* Checks a path pattern; returns NULL or why it is bad (in why). */
static const char *path_problem(const char *path, char *why, size_t why_len) {
    const char *seg, *end, *p;
    const char *names[32];
    size_t lens[32], n_names = 0, i, sl;

    if (path[0] != '/')
        return "path must start with \"/\"";
    for (p = path; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return "path must not contain spaces or control characters";
        if (*p == '?' || *p == '#')
            return "path must not contain \"?\" or \"#\" (the query string is described by args)";
    }
    for (seg = path + 1;; seg = end + 1) {
        end = strchr(seg, '/');
        sl = end ? (size_t)(end - seg) : strlen(seg);
        if (sl == 0 && end)
            return "path must not contain an empty segment (\"//\")";
        if (sl > 0 && seg[0] == '{') {
            if (seg[sl - 1] != '}' || !is_param_name(seg + 1, sl - 2)) {
                snprintf(why, why_len,
                         "malformed parameter \"%.*s\" in path (expected {name}: a letter or _ "
                         "then letters, digits or _, filling a whole segment)",
                         (int)(sl > 60 ? 60 : sl), seg);
                return why;
            }
            for (i = 0; i < n_names; i++) {
                if (lens[i] == sl - 2 && memcmp(names[i], seg + 1, sl - 2) == 0) {
                    snprintf(why, why_len, "parameter \"%.*s\" appears twice in path",
                             (int)(sl - 2 > 60 ? 60 : sl - 2), seg + 1);
                    return why;
                }
            }
            if (n_names == sizeof(names) / sizeof(names[0]))
                return "path has too many parameters";
            names[n_names] = seg + 1;
            lens[n_names++] = sl - 2;
        } else if (memchr(seg, '{', sl) || memchr(seg, '}', sl)) {
            snprintf(why, why_len,
                     "malformed parameter in segment \"%.*s\" of path (a parameter {name} must "
                     "fill a whole segment)",
                     (int)(sl > 60 ? 60 : sl), seg);
            return why;
        }
        if (!end)
            break;
    }
    return NULL;
}

static void set_path(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                     void *base) {
    char why[256], t[96];
    const char *problem;

    if (!cfg_scalar_ok(ld, k, v, "a path such as /messages/"))
        return;
    problem = path_problem(v->value, why, sizeof(why));
    if (problem) {
        cfg_errf(ld, v, "bad path \"%s\": %s", cfg_quote(v->value, t, sizeof(t)), problem);
        return;
    }
    cfg_store_str(ld, FIELD(base, k->off, char *), v->value);
}

/* http.public_prefix: where clients reach the API, a path ("/api/v1") or an
 * absolute http(s) URL; kept without a trailing slash (except "/" itself). */
void cfg_set_prefix(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                    void *base) {
    char t[96], *stored;
    const char *s;
    size_t n;

    if (!cfg_scalar_ok(ld, k, v, "a path such as /api/v1 or an http(s) URL"))
        return;
    s = v->value;
    if (s[0] != '/' && strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0) {
        cfg_errf(ld, v, "bad \"%s\" \"%s\": expected a path starting with / or an http(s) URL",
                 k->name, cfg_quote(s, t, sizeof(t)));
        return;
    }
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == '?' || *p == '#' || *p == 0x7f) {
            cfg_errf(ld, v, "bad \"%s\" \"%s\": no spaces, control characters, ? or # allowed",
                     k->name, cfg_quote(s, t, sizeof(t)));
            return;
        }
    }
    if (!cfg_store_str(ld, FIELD(base, k->off, char *), s))
        return;
    stored = *FIELD(base, k->off, char *);
    n = strlen(stored);
    while (n > 1 && stored[n - 1] == '/')
        stored[--n] = '\0';
}

/* YAML -> JSON for a block of free-form data (a schema, a handler's config). */
static json_t *node_json(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v) {
    const struct ynode *bad = NULL;
    char msg[160];
    json_t *j = ytree_to_json(v, &bad, msg, sizeof(msg));

    if (!j)
        cfg_errf(ld, bad ? bad : v, "in \"%s\": %s", k->name, msg);
    return j;
}

static void set_schema(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                       void *base) {
    struct jschema_error err;
    const struct ynode *at;
    struct jschema *compiled;
    json_t *j, *type;
    char d[96];
    size_t i;
    bool is_args = strcmp(k->name, "args") == 0;

    if (v->kind != YNODE_MAP && !(v->kind == YNODE_SCALAR && !v->quoted &&
                                  (!strcmp(v->value, "true") || !strcmp(v->value, "false")))) {
        cfg_errf(ld, v, "expected a JSON Schema (a mapping, true or false) for \"%s\", got %s",
                 k->name, cfg_describe(v, d, sizeof(d)));
        return;
    }
    j = node_json(ld, k, v);
    if (!j)
        return;
    type = json_object_get(j, "type");
    if (is_args && type) {
        bool ok = json_is_string(type) && strcmp(json_string_value(type), "object") == 0;
        if (json_is_array(type) && json_array_size(type) > 0) {
            ok = true;
            for (i = 0; i < json_array_size(type); i++) {
                json_t *t = json_array_get(type, i);
                if (!json_is_string(t) || strcmp(json_string_value(t), "object") != 0)
                    ok = false;
            }
        }
        if (!ok) {
            cfg_errf(ld, ytree_pointer(v, "/type"),
                     "args schema must have type \"object\" (the query string is an object of "
                     "strings)");
            json_decref(j);
            return;
        }
    }
    memset(&err, 0, sizeof(err));
    compiled = jschema_compile(j, &err);
    if (!compiled) {
        err.schema_path[sizeof(err.schema_path) - 1] = '\0';
        err.message[sizeof(err.message) - 1] = '\0';
        at = ytree_pointer(v, err.schema_path);
        cfg_errf(ld, at, "invalid %s schema: %s", k->name,
                 err.message[0] ? err.message : "rejected by the validator");
        json_decref(j);
        return;
    }
    json_decref(*FIELD(base, k->off, json_t *));
    jschema_free(*FIELD(base, k->off2, struct jschema *));
    *FIELD(base, k->off, json_t *) = j;
    *FIELD(base, k->off2, struct jschema *) = compiled;
}

static void set_json(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                     void *base) {
    json_t *j;

    if (ytree_is_null(v))
        return;
    j = node_json(ld, k, v);
    if (!j)
        return;
    json_decref(*FIELD(base, k->off, json_t *));
    *FIELD(base, k->off, json_t *) = j;
}

static bool media_type_ok(const char *t) {
    const char *slash = strchr(t, '/');

    return slash && slash != t && slash[1] != '\0' && !strchr(t, ' ') && !strchr(t, ';');
}

/* One item of content_types in its long form: {type: image/png, max_body: 5MiB}. */
struct ctype_item {
    char *type;
    size_t max_body;
    int kind; /* enum cfg_body_kind + 1, or 0 when not given */
};

static const char *const body_kinds[] = {"json", "form", "multipart", "binary"};

static void set_body_kind(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                          void *base) {
    char t[96];
    const char *s;

    if (!cfg_scalar_ok(ld, k, v, "json or binary"))
        return;
    for (size_t i = 0; i < sizeof(body_kinds) / sizeof(body_kinds[0]); i++) {
        if (strcmp(v->value, body_kinds[i]) == 0) {
            *FIELD(base, k->off, int) = (int)i + 1;
            return;
        }
    }
    s = cfg_suggest(v->value, body_kinds, 4);
    if (s)
        cfg_errf(ld, v, "unknown kind \"%s\" (did you mean \"%s\"?)",
                 cfg_quote(v->value, t, sizeof(t)), s);
    else
        cfg_errf(ld, v, "unknown kind \"%s\" (expected json, form, multipart or binary)",
                 cfg_quote(v->value, t, sizeof(t)));
}

/* The kind a content type has when none is given. */
static enum cfg_body_kind default_kind(const char *type) {
    static const char *const binary_prefixes[] = {"image/", "audio/", "video/", "font/"};
    static const char *const binary_types[] = {"application/octet-stream", "application/pdf",
                                               "application/zip", "application/gzip"};

    if (strcasecmp(type, "application/x-www-form-urlencoded") == 0)
        return CFG_BODY_FORM;
    if (strcasecmp(type, "multipart/form-data") == 0)
        return CFG_BODY_MULTIPART;
    for (size_t i = 0; i < sizeof(binary_prefixes) / sizeof(binary_prefixes[0]); i++)
        if (strncasecmp(type, binary_prefixes[i], strlen(binary_prefixes[i])) == 0)
            return CFG_BODY_BINARY;
    for (size_t i = 0; i < sizeof(binary_types) / sizeof(binary_types[0]); i++)
        if (strcasecmp(type, binary_types[i]) == 0)
            return CFG_BODY_BINARY;
    return CFG_BODY_JSON;
}

#define CT(f) offsetof(struct ctype_item, f)

static const struct cfg_key ctype_keys[] = {
    {"type", cfg_set_str, CT(type), 0, 0, 0, NULL, K_REQUIRED},
    {"max_body", cfg_set_size, CT(max_body), 0, 1, 1024ll * 1024 * 1024, NULL, 0},
    {"kind", set_body_kind, CT(kind), 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

/* content_types: a list whose items are a media type, or a mapping with the
 * type and its own size limit. */
static void set_content_types(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                              void *base) {
    struct cfg_endpoint *ep = base;
    char d[96], t[96];
    char **list;
    size_t *limits, i, j, n = 0;
    enum cfg_body_kind *kinds;

    if (v->kind != YNODE_SEQ) {
        cfg_errf(ld, v, "expected a list of media types for \"%s\", got %s", k->name,
                 cfg_describe(v, d, sizeof(d)));
        return;
    }
    if (v->n_items == 0)
        cfg_errf(ld, v, "\"%s\" must not be empty", k->name);
    list = calloc(v->n_items + 1, sizeof(*list));
    limits = calloc(v->n_items + 1, sizeof(*limits));
    kinds = calloc(v->n_items + 1, sizeof(*kinds));
    if (!list || !limits || !kinds) {
        free(list);
        free(limits);
        free(kinds);
        ld->oom = true;
        return;
    }
    for (i = 0; i < v->n_items; i++) {
        const struct ynode *it = v->items[i];
        struct ctype_item item = {0};

        if (it->invalid)
            continue;
        if (it->kind == YNODE_MAP) {
            cfg_apply_map(ld, ctype_keys, it, &item);
            if (!item.type)
                continue;
        } else if (it->kind == YNODE_SCALAR && !ytree_is_null(it) && it->value[0] != '\0') {
            item.type = strdup(it->value);
            if (!item.type) {
                ld->oom = true;
                break;
            }
        } else {
            cfg_errf(ld, it, "expected a media type or {type, max_body} in \"%s\", got %s", k->name,
                     cfg_describe(it, d, sizeof(d)));
            continue;
        }
        if (!media_type_ok(item.type)) {
            cfg_errf(ld, it,
                     "bad content type \"%s\" (expected type/subtype, e.g. application/json)",
                     cfg_quote(item.type, t, sizeof(t)));
            free(item.type);
            continue;
        }
        for (j = 0; j < n; j++)
            if (strcasecmp(list[j], item.type) == 0)
                break;
        if (j < n) {
            cfg_errf(ld, it, "content type \"%s\" is listed twice",
                     cfg_quote(item.type, t, sizeof(t)));
            free(item.type);
            continue;
        }
        if (item.kind == CFG_BODY_FORM + 1 || item.kind == CFG_BODY_MULTIPART + 1 ||
            default_kind(item.type) == CFG_BODY_FORM ||
            default_kind(item.type) == CFG_BODY_MULTIPART) {
            if (item.kind && (enum cfg_body_kind)(item.kind - 1) != default_kind(item.type)) {
                cfg_errf(ld, ytree_get(it, "kind"),
                         "kind form is for application/x-www-form-urlencoded and multipart for "
                         "multipart/form-data only");
                free(item.type);
                continue;
            }
        }
        list[n] = item.type;
        kinds[n] = item.kind ? (enum cfg_body_kind)(item.kind - 1) : default_kind(item.type);
        limits[n++] = item.max_body;
    }
    cfg_free_strv(ep->content_types, ep->n_content_types);
    free(ep->content_max_body);
    free(ep->content_kinds);
    ep->content_types = list;
    ep->content_max_body = limits;
    ep->content_kinds = kinds;
    ep->n_content_types = n;
}

/* response: any JSON value; the answer's body on success. */
static void set_response(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                         void *base) {
    json_t *j = node_json(ld, k, v);

    if (!j)
        return;
    json_decref(*FIELD(base, k->off, json_t *));
    *FIELD(base, k->off, json_t *) = j;
}

#define FL(f) offsetof(struct cfg_file, f)

static const struct cfg_key file_keys[] = {
    {"field", cfg_set_str, FL(field), 0, 0, 0, NULL, K_REQUIRED},
    {"required", cfg_set_bool, FL(required), 0, 0, 0, NULL, 0},
    {"types", cfg_set_strlist, FL(types), FL(n_types), 0, 0, NULL, 0},
    {"max_size", cfg_set_size, FL(max_size), 0, 1, 1024ll * 1024 * 1024, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static void file_free(struct cfg_file *f) {
    free(f->field);
    cfg_free_strv(f->types, f->n_types);
}

static void file_init(void *item, const struct ynode *map) {
    struct cfg_file *f = item;

    f->pos.line = map->line;
    f->pos.col = map->col;
}

static void file_check_cb(struct cfg_loader *ld, const struct ynode *map, void *item) {
    struct cfg_file *f = item;
    char t[96];

    for (size_t i = 0; i < f->n_types; i++)
        if (!media_type_ok(f->types[i]))
            cfg_errf(ld, ytree_get(map, "types"),
                     "bad content type \"%s\" (expected type/subtype, e.g. image/png)",
                     cfg_quote(f->types[i], t, sizeof(t)));
}

void cfg_set_files(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                   void *base) {
    struct cfg_endpoint *ep = base;

    for (size_t i = 0; i < ep->n_files; i++)
        file_free(&ep->files[i]);
    free(ep->files);
    ep->files = cfg_apply_list(ld, k, v, sizeof(struct cfg_file), "file fields", &ep->n_files,
                               file_init, file_check_cb);
}

#define EP(f) offsetof(struct cfg_endpoint, f)
#define HD(f) offsetof(struct cfg_handler, f)

const struct cfg_key cfg_endpoint_keys[] = {
    {"path", set_path, EP(path), 0, 0, 0, NULL, K_REQUIRED},
    {"method", set_method, EP(method), 0, 0, 0, NULL, K_REQUIRED},
    {"mode", set_mode, EP(mode), 0, 0, 0, NULL, K_REQUIRED},
    {"summary", cfg_set_str, EP(summary), 0, 0, 0, NULL, 0},
    {"body", set_schema, EP(body), EP(body_schema), 0, 0, NULL, 0},
    {"args", set_schema, EP(args), EP(args_schema), 0, 0, NULL, 0},
    {"live", cfg_set_bool, EP(live), 0, 0, 0, NULL, 0},
    {"trailing_slash", cfg_set_bool, EP(trailing_slash), 0, 0, 0, NULL, 0},
    {"timeout", cfg_set_duration, EP(timeout_ms), 0, 1, 3600000, NULL, 0},
    {"status", cfg_set_int, EP(status), 0, 200, 299, NULL, 0},
    {"validation_status", cfg_set_int, EP(validation_status), 0, 400, 499, NULL, 0},
    {"max_body", cfg_set_size, EP(max_body), 0, 1, 1024ll * 1024 * 1024, NULL, 0},
    {"content_types", set_content_types, EP(content_types), EP(n_content_types), 0, 0, NULL, 0},
    {"response", set_response, EP(response), 0, 0, 0, NULL, 0},
    {"files", cfg_set_files, 0, 0, 0, 0, file_keys, 0},
    {"auth", cfg_set_auth_rule, EP(auth), 0, 0, 0, cfg_auth_rule_keys, 0},
    {"live_auth", cfg_set_auth_rule, EP(live_auth), 0, 0, 0, cfg_auth_rule_keys, 0},
    {"rate_limit", cfg_set_rate_limit, EP(rate_limit), 0, 0, 0, cfg_rate_limit_keys, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

const struct cfg_key cfg_handler_keys[] = {
    {"name", cfg_set_str, HD(name), 0, 0, 0, NULL, K_REQUIRED},
    {"plugin", cfg_set_str, HD(plugin), 0, 0, 0, NULL, K_REQUIRED},
    {"queue", cfg_set_str, HD(queue), 0, 0, 0, NULL, K_REQUIRED},
    {"prefetch", cfg_set_int, HD(prefetch), 0, 1, 65535, NULL, 0},
    {"batch", cfg_set_int, HD(batch), 0, 1, 100000, NULL, 0},
    {"batch_wait", cfg_set_duration, HD(batch_wait_ms), 0, 0, 60000, NULL, 0},
    {"instances", cfg_set_int, HD(instances), 0, 1, 1024, NULL, 0},
    {"crash_limit", cfg_set_int, HD(crash_limit), 0, 1, 1000, NULL, 0},
    {"config", set_json, HD(config), 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

void cfg_endpoint_init(struct cfg_endpoint *ep) {
    memset(ep, 0, sizeof(*ep));
    ep->mode = CFG_MODE_PUBLISH;
    ep->timeout_ms = 5000;
    ep->status = 202;
    ep->validation_status = 400;
}

void cfg_endpoint_free(struct cfg_endpoint *ep) {
    free(ep->path);
    free(ep->method);
    free(ep->exchange);
    free(ep->summary);
    json_decref(ep->body);
    json_decref(ep->args);
    jschema_free(ep->body_schema);
    jschema_free(ep->args_schema);
    cfg_free_strv(ep->content_types, ep->n_content_types);
    free(ep->content_max_body);
    free(ep->content_kinds);
    json_decref(ep->response);
    for (int r = 0; r < 2; r++) {
        struct cfg_auth_rule *a = r ? &ep->live_auth : &ep->auth;

        cfg_free_strv(a->scopes, a->n_scopes);
        cfg_free_strv(a->roles, a->n_roles);
        cfg_free_strv(a->methods, a->n_methods);
    }
    free(ep->rate_limit.by);
    for (size_t i = 0; i < ep->n_files; i++)
        file_free(&ep->files[i]);
    free(ep->files);
}

void cfg_handler_free(struct cfg_handler *h) {
    free(h->name);
    free(h->plugin);
    free(h->plugin_path);
    free(h->queue);
    json_decref(h->config);
}

/* Checks of one endpoint that involve several of its keys. */
static void endpoint_check(struct cfg_loader *ld, const struct ynode *map,
                           struct cfg_endpoint *ep) {
    const struct ynode *v;
    size_t n;

    v = ytree_get(map, "mode");
    /* Only when the mode itself is valid, or a typo there would bring more. */
    if (v && v->kind == YNODE_SCALAR &&
        (!strcmp(v->value, "publish") || !strcmp(v->value, "rpc"))) {
        if (ep->mode == CFG_MODE_PUBLISH && (v = ytree_get(map, "timeout")))
            cfg_errf(ld, v, "\"timeout\" applies only to rpc endpoints");
        if (ep->mode == CFG_MODE_RPC && (v = ytree_get(map, "live")))
            cfg_errf(ld, v, "\"live\" applies only to publish endpoints");
        if (ep->mode == CFG_MODE_RPC && (v = ytree_get(map, "status")))
            cfg_errf(ld, v, "\"status\" applies only to publish endpoints (an rpc answer sets it)");
        if (ep->mode == CFG_MODE_RPC && (v = ytree_get(map, "response")))
            cfg_errf(ld, v, "\"response\" applies only to publish endpoints (an rpc answer is it)");
    }
    if (ep->n_files > 0 && (v = ytree_get(map, "files"))) {
        bool multipart = false;

        for (n = 0; n < ep->n_content_types; n++)
            if (strcasecmp(ep->content_types[n], "multipart/form-data") == 0)
                multipart = true;
        if (!multipart)
            cfg_errf(ld, v, "\"files\" needs multipart/form-data in \"content_types\"");
        for (n = 0; n < ep->n_files; n++)
            for (size_t m = 0; m < n; m++)
                if (ep->files[n].field && ep->files[m].field &&
                    strcmp(ep->files[n].field, ep->files[m].field) == 0)
                    cfg_errf(ld, v->items[n], "file field \"%s\" is listed twice",
                             ep->files[n].field);
    }
    if (ep->path && ep->method) {
        n = strlen(ep->path) + 1 + strlen(ep->method);
        ep->exchange = malloc(n + 1);
        if (!ep->exchange) {
            ld->oom = true;
            return;
        }
        snprintf(ep->exchange, n + 1, "%s:%s", ep->path, ep->method);
        if (n > MAX_AMQP_NAME)
            cfg_errf(ld, ytree_get(map, "path"),
                     "path is too long: its exchange name \"<path>:<METHOD>\" must fit in %d bytes",
                     MAX_AMQP_NAME);
    }
}

static void endpoint_init(void *item, const struct ynode *map) {
    struct cfg_endpoint *ep = item;

    cfg_endpoint_init(ep);
    ep->pos.line = map->line;
    ep->pos.col = map->col;
}

static void endpoint_check_cb(struct cfg_loader *ld, const struct ynode *map, void *item) {
    endpoint_check(ld, map, item);
}

static void handler_init(void *item, const struct ynode *map) {
    struct cfg_handler *h = item;

    h->prefetch = 256;
    h->batch = 100;
    h->batch_wait_ms = 5;
    h->instances = 1;
    h->crash_limit = 3;
    h->pos.line = map->line;
    h->pos.col = map->col;
}

static void handler_check_cb(struct cfg_loader *ld, const struct ynode *map, void *item) {
    struct cfg_handler *h = item;

    if (h->queue && strlen(h->queue) > MAX_AMQP_NAME)
        cfg_errf(ld, ytree_get(map, "queue"), "queue name is longer than %d bytes", MAX_AMQP_NAME);
}

void cfg_set_endpoints(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                       void *base) {
    struct cfg *cfg = base;
    size_t i;

    for (i = 0; i < cfg->n_endpoints; i++)
        cfg_endpoint_free(&cfg->endpoints[i]);
    free(cfg->endpoints);
    cfg->endpoints = cfg_apply_list(ld, k, v, sizeof(struct cfg_endpoint), "endpoints",
                                    &cfg->n_endpoints, endpoint_init, endpoint_check_cb);
}

void cfg_set_handlers(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                      void *base) {
    struct cfg *cfg = base;
    size_t i;

    for (i = 0; i < cfg->n_handlers; i++)
        cfg_handler_free(&cfg->handlers[i]);
    free(cfg->handlers);
    cfg->handlers = cfg_apply_list(ld, k, v, sizeof(struct cfg_handler), "handlers",
                                   &cfg->n_handlers, handler_init, handler_check_cb);
}
