/*
 * Fuzz target: the configuration loader on arbitrary bytes.  Whatever the
 * input, loading must not crash, leak or read out of bounds; an accepted
 * snapshot must build a router (the loader promised it would), and every
 * error must print as one line.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_load.h"
#include "core/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tr_config_errors errs = { NULL, 0 };
    tr_config *cfg;
    char err[512];

    cfg = tr_config_load_buffer("fuzz.yaml", (const char *)data, size,
                                &errs);
    if (cfg != NULL) {
        tr_router *r;
        if (errs.n != 0)
            abort();
        r = tr_router_build(cfg, err, sizeof(err));
        if (r == NULL)
            abort();
        tr_router_free(r);
        tr_config_free(cfg);
    } else {
        char *out = NULL;
        size_t len = 0, lines = 0;
        FILE *f = open_memstream(&out, &len);
        if (errs.n == 0 || f == NULL)
            abort();
        tr_config_errors_print(&errs, f);
        fclose(f);
        for (size_t i = 0; i < len; i++)
            lines += out[i] == '\n';
        if (lines != errs.n)
            abort();
        free(out);
    }
    tr_config_errors_clear(&errs);
    return 0;
}
