/* What the pieces of the endpoints.yaml loader share; private to common/config*.c.
 *
 * config.c (the API: cfg_init, cfg_load, cfg_free) drives the others: the file becomes a
 * yamltree, the key tables (config_sections.c, config_endpoints.c,
 * config_auth.c) are applied by the engine of config_keys.c, whole-file
 * checks (config_checks.c, cfg_check_auth) and environment overrides
 * (config_env.c) follow, and every problem lands in the error list of
 * config_errors.c. Nothing outside common/config*.c includes this header.
 */
#ifndef FPESA_CONFIG_INT_H
#define FPESA_CONFIG_INT_H

#include "config.h"
#include "yamltree.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* AMQP exchange and queue names are short strings of at most 255 bytes. */
#define MAX_AMQP_NAME 255

/* ---- the error list ---- */

enum cfg_lerr_kind {
    LERR_POS,  /* file:line:col: msg */
    LERR_FILE, /* file: msg */
    LERR_BARE, /* msg (environment overrides name themselves) */
};

struct cfg_lerr {
    enum cfg_lerr_kind kind;
    int line, col;
    size_t seq;
    char *msg;
};

struct cfg_loader {
    const char *file;
    struct cfg *cfg;
    struct cfg_lerr *errs;
    size_t n_errs, cap_errs;
    bool oom;
};

/* ---- the key tables ---- */

struct cfg_key;
typedef void cfg_set_fn(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                        void *base);

#define K_REQUIRED 1u

struct cfg_key {
    const char *name;
    cfg_set_fn *set;
    size_t off;  /* the field in base */
    size_t off2; /* a second field: a listen's port, a list's count, a compiled schema */
    long long min, max;
    const struct cfg_key *sub; /* a section's or a list item's keys */
    unsigned flags;
};

#define FIELD(base, off, type) ((type *)(void *)((char *)(base) + (off)))

/* ---- config_errors.c: the loader's error list (every problem, sorted, file:line:col) and the
 * wording of messages. ---- */

const char *cfg_describe(const struct ynode *n, char *buf, size_t len);
const char *cfg_quote(const char *s, char *buf, size_t len);
const char *cfg_suggest(const char *word, const char *const *cands, size_t n);
void cfg_add_err(struct cfg_loader *ld, enum cfg_lerr_kind kind, int line, int col,
                 const char *msg);
void cfg_env_errf(struct cfg_loader *ld, const char *var, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void cfg_errf(struct cfg_loader *ld, const struct ynode *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void cfg_print_errs(struct cfg_loader *ld, FILE *out);
void cfg_tree_err(void *ctx, int line, int col, const char *msg);

/* ---- config_values.c: value parsers that need no key table. ---- */

int cfg_parse_listen(const char *s, char **host, int *port, char *why, size_t why_len);

/* ---- config_keys.c: the key-table engine and the setters of plain values. ---- */

bool cfg_bus_url_ok(const char *s);
bool cfg_scalar_ok(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                   const char *what);
bool cfg_store_str(struct cfg_loader *ld, char **field, const char *s);
void *cfg_apply_list(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                     size_t elem, const char *what, size_t *n,
                     void (*init)(void *item, const struct ynode *map),
                     void (*check)(struct cfg_loader *ld, const struct ynode *map, void *item));
void cfg_apply_map(struct cfg_loader *ld, const struct cfg_key *keys, const struct ynode *map,
                   void *base);
void cfg_free_strv(char **v, size_t n);
void cfg_set_bus_url(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                     void *base);
void cfg_set_bool(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                  void *base);
void cfg_set_count(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                   void *base);
void cfg_set_duration(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                      void *base);
void cfg_set_int(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v, void *base);
void cfg_set_listen(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                    void *base);
void cfg_set_long(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                  void *base);
void cfg_set_seconds(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                     void *base);
void cfg_set_section(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                     void *base);
void cfg_set_size(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                  void *base);
void cfg_set_str(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v, void *base);
void cfg_set_strlist(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                     void *base);

/* ---- config_endpoints.c: the schema of endpoints[] and handlers[]. ---- */

extern const struct cfg_key cfg_endpoint_keys[];
extern const struct cfg_key cfg_handler_keys[];
void cfg_endpoint_free(struct cfg_endpoint *ep);
void cfg_handler_free(struct cfg_handler *h);
void cfg_set_endpoints(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                       void *base);
void cfg_set_files(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                   void *base);
void cfg_set_handlers(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                      void *base);
void cfg_set_prefix(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                    void *base);

/* ---- config_auth.c: the auth section and the auth rules of endpoints. ---- */

extern const struct cfg_key cfg_auth_keys[];
extern const struct cfg_key cfg_auth_rule_keys[];
extern const struct cfg_key cfg_jwt_keys[];
extern const struct cfg_key cfg_rate_limit_keys[];
void cfg_api_key_free(struct cfg_api_key *a);
void cfg_check_auth(struct cfg_loader *ld);
void cfg_jwt_key_free(struct cfg_jwt_key *j);
void cfg_set_api_keys(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                      void *base);
void cfg_set_auth(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                  void *base);
void cfg_set_auth_rule(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                       void *base);
void cfg_set_jwt_keys(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                      void *base);
void cfg_set_rate_limit(struct cfg_loader *ld, const struct cfg_key *k, const struct ynode *v,
                        void *base);

/* ---- config_sections.c: the top-level section tables. ---- */

extern const struct cfg_key cfg_top_keys[];
int cfg_queue_type_of(const char *name);
int cfg_live_source_of(const char *name);

/* ---- config_checks.c: checks and defaults that need the whole file. ---- */

void cfg_check_duplicates(struct cfg_loader *ld, const struct ynode *root);
void cfg_finish(struct cfg_loader *ld);
void cfg_resolve_plugins(struct cfg_loader *ld, const struct ynode *root);

/* ---- config_env.c: the FPESA_* environment overrides. ---- */

void cfg_env_overrides(struct cfg_loader *ld);

#endif
