/* The refusal catalogue: every kind has a unique, documented type. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/problem.h"

static void
every_kind_has_type_title_and_error_status(void **state)
{
    for (int k = 0; k < TR_P__COUNT; k++) {
        const tr_problem_info *p = tr_problem((tr_problem_kind)k);
        assert_non_null(p->type);
        assert_non_null(p->title);
        assert_true(strlen(p->slug) > 0);
        assert_true(p->status >= 400 && p->status <= 599);
        assert_non_null(strstr(p->type, p->slug));
    }
}

static void
slugs_are_unique(void **state)
{
    for (int a = 0; a < TR_P__COUNT; a++)
        for (int b = a + 1; b < TR_P__COUNT; b++)
            assert_string_not_equal(tr_problem((tr_problem_kind)a)->slug,
                                    tr_problem((tr_problem_kind)b)->slug);
}

static void
every_slug_is_documented_in_problems_md(void **state)
{
    FILE *f = fopen("docs/problems.md", "r");
    assert_non_null(f);
    static char doc[65536];
    size_t n = fread(doc, 1, sizeof(doc) - 1, f);
    fclose(f);
    doc[n] = '\0';
    for (int k = 0; k < TR_P__COUNT; k++) {
        char want[96];
        snprintf(want, sizeof(want), "`%s`",
                 tr_problem((tr_problem_kind)k)->slug);
        if (!strstr(doc, want)) {
            /* The IANA types are listed by their plain name. */
            snprintf(want, sizeof(want), "IANA `%s`",
                     tr_problem((tr_problem_kind)k)->slug);
        }
        assert_non_null(strstr(doc, want));
    }
}

static void
out_of_range_kind_is_internal_error(void **state)
{
    assert_int_equal(tr_problem((tr_problem_kind)9999)->status, 500);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_kind_has_type_title_and_error_status),
        cmocka_unit_test(slugs_are_unique),
        cmocka_unit_test(every_slug_is_documented_in_problems_md),
        cmocka_unit_test(out_of_range_kind_is_internal_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
