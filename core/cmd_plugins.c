/* This file implements `quantkit plugins [--json] [--plugin-path DIR ...]`:
 * it lists every plugin the registry finds -- kind, name, version, file and
 * one-line description -- as an aligned table, or as a JSON array for
 * scripts.  Listing loads every plugin (the only command that does); a
 * broken one is reported on stderr, one line each, and the listing goes on.
 * Exit status 0 unless no plugin directory at all could be searched. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "registry.h"

static const char *or_empty(const char *s) { return s ? s : ""; }

/* Writes s as a JSON string literal. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)or_empty(s); *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

static int width(int w, const char *s)
{
    int n = (int)strlen(or_empty(s));
    return n > w ? n : w;
}

int cmd_plugins(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'}, {"plugin-path", required_argument, 0, 'P'}, {0, 0, 0, 0}};
    const char **path = calloc((size_t)argc + 1, sizeof *path);
    size_t n_path = 0;
    int json = 0, c, status = 1;
    registry *r = NULL;
    const qk_plugin_descriptor **desc = NULL;
    if (!path)
        return cli_error("plugins: out of memory");
    optind = 1;
    opterr = 0;   /* one line per error: ours, naming the option */
    while ((c = getopt_long(argc, argv, "jP:", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'P': path[n_path++] = optarg; break;
        default:
            cli_error("plugins: %s option '%s' (usage: quantkit plugins [--json] [--plugin-path DIR ...])",
                      c == ':' || (c == '?' && optopt == 'P') ? "missing argument to" : "unknown", argv[optind - 1]);
            goto out;
        }
    }
    if (optind != argc) {
        cli_error("usage: quantkit plugins [--json] [--plugin-path DIR ...]");
        goto out;
    }
    qk_err err = {0};
    if (registry_new(path, n_path, &r, &err)) {
        cli_error("%s", err.msg);
        goto out;
    }
    for (size_t i = 0; i < registry_warning_count(r); i++)
        fprintf(stderr, "quantkit: warning: %s\n", registry_warning(r, i));
    if (!registry_dirs_opened(r)) {
        char dirs[1024] = "";
        size_t len = 0;
        for (size_t i = 0; i < registry_dir_count(r) && len < sizeof dirs; i++) {
            registry_origin o;
            const char *d = registry_dir(r, i, &o, NULL);
            int k = snprintf(dirs + len, sizeof dirs - len, "%s%s (%s)", i ? ", " : "", d, registry_origin_name(o));
            len = k > 0 ? len + (size_t)k : len;
        }
        cli_error("plugins: no plugin directory could be searched: %s", registry_dir_count(r) ? dirs : "none given");
        goto out;
    }
    size_t n = registry_count(r);
    desc = calloc(n + 1, sizeof *desc);
    if (!desc) {
        cli_error("plugins: out of memory");
        goto out;
    }
    /* Load everything first so that the table's columns fit what loaded. */
    int wk = 4, wn = 4, wv = 7, wf = 4;
    for (size_t i = 0; i < n; i++) {
        const registry_entry *e = registry_entry_at(r, i);
        if (registry_load_at(r, i, &desc[i], &err)) {
            fprintf(stderr, "quantkit: %s\n", err.msg);
            continue;
        }
        wk = width(wk, registry_kind_name(e->kind));
        wn = width(wn, e->name);
        wv = width(wv, desc[i]->version);
        wf = width(wf, e->file);
    }
    if (json) {
        size_t shown = 0;
        fputc('[', stdout);
        for (size_t i = 0; i < n; i++) {
            if (!desc[i])
                continue;
            const registry_entry *e = registry_entry_at(r, i);
            registry_origin o;
            registry_dir(r, (size_t)e->dir, &o, NULL);
            fputs(shown++ ? ",\n " : "\n ", stdout);
            fputs("{\"kind\":", stdout);
            json_str(stdout, registry_kind_name(e->kind));
            fputs(",\"name\":", stdout);
            json_str(stdout, e->name);
            fputs(",\"version\":", stdout);
            json_str(stdout, desc[i]->version);
            fputs(",\"file\":", stdout);
            json_str(stdout, e->file);
            fputs(",\"description\":", stdout);
            json_str(stdout, desc[i]->description);
            fputs(",\"license\":", stdout);
            json_str(stdout, desc[i]->license);
            fputs(",\"origin\":", stdout);
            json_str(stdout, registry_origin_name(o));
            fputc('}', stdout);
        }
        fputs(shown ? "\n]\n" : "]\n", stdout);
    } else {
        printf("%-*s  %-*s  %-*s  %-*s  %s\n", wk, "KIND", wn, "NAME", wv, "VERSION", wf, "FILE", "DESCRIPTION");
        for (size_t i = 0; i < n; i++) {
            if (!desc[i])
                continue;
            const registry_entry *e = registry_entry_at(r, i);
            printf("%-*s  %-*s  %-*s  %-*s  %s\n", wk, registry_kind_name(e->kind), wn, e->name, wv,
                   or_empty(desc[i]->version), wf, e->file, or_empty(desc[i]->description));
        }
    }
    status = 0;
out:
    registry_free(r);
    free(desc);
    free(path);
    return status;
}
