// More than two U-Nets in one schedule (hsd_pipeline_config.more_models,
// hsd_gen_request.splits): one sampler object, U-Net i+1 from call
// splits[i] on. Checked against the two-U-Net runs it must reduce to, bit
// for bit on the CPU (same U-Nets, same calls): large, edge, edge with
// splits (3, 5) == large, edge with split 3; large, edge, large with
// splits (3, 8) == split 3 (the third never runs). Control: large, edge,
// large with (3, 5) differs from both. Bad split lists are refused.
#include <stdio.h>
#include <string.h>

#include "pipeline/pipeline.h"
#include "testutil.h"

static char g_large[600], g_edge[600];

static int run(float *lat, const char *third, const int *splits, int n_splits, int split) {
    const char *more[1] = {third};
    struct hsd_pipeline_config pc = {.model = g_large, .edge_model = g_edge, .threads = 2,
                                     .more_models = more, .n_more_models = third ? 1 : 0};
    struct hsd_pipeline *p = NULL;
    CHECK_OK(hsd_pipeline_load(&p, &pc));
    if (!p) return -1;
    struct hsd_gen_request r = {.prompt = "a red bicycle", .guidance_scale = 5.0f, .steps = 8,
                                .split = split, .sampler = HSD_SAMPLER_DPMPP_2M, .width = 64,
                                .height = 64, .seed = 3, .batch_count = 1, .splits = splits,
                                .n_splits = n_splits};
    enum hsd_status s = hsd_pipeline_generate(p, &r, NULL, NULL, lat, NULL, NULL, NULL);
    hsd_pipeline_free(p);
    return s;
}

int main(void) {
    snprintf(g_large, sizeof g_large, "%s/pipeline/large", HSD_TEST_DATA);
    snprintf(g_edge, sizeof g_edge, "%s/pipeline/edge", HSD_TEST_DATA);
    float two[256], three[256];
    CHECK(run(two, NULL, NULL, 0, 3) == HSD_OK);
    const int s35[2] = {3, 5}, s38[2] = {3, 8};
    CHECK(run(three, g_edge, s35, 2, -1) == HSD_OK);
    CHECKF(!memcmp(two, three, sizeof two), "large, edge, edge (3, 5) != large, edge (3)");
    CHECK(run(three, g_large, s38, 2, -1) == HSD_OK);
    CHECKF(!memcmp(two, three, sizeof two), "large, edge, large (3, 8) != large, edge (3)");
    CHECK(run(three, g_large, s35, 2, -1) == HSD_OK);
    struct hsd_cmp d = hsd_compare(three, two, 256);
    printf("large, edge, large (3, 5) vs large, edge (3): max|diff| %.3g\n", d.max_abs_err);
    CHECKF(d.max_abs_err > 1e-3, "the third U-Net did not run");
    // Refused: descending, past the calls, a count that does not match.
    const int bad1[2] = {5, 3}, bad2[2] = {3, 9};
    CHECK(run(three, g_large, bad1, 2, -1) == HSD_ERR_INVALID_ARG);
    CHECK(run(three, g_large, bad2, 2, -1) == HSD_ERR_INVALID_ARG);
    CHECK(run(three, g_large, s35, 1, -1) == HSD_ERR_INVALID_ARG);
    CHECK(run(three, g_large, NULL, 0, 3) == HSD_ERR_INVALID_ARG);
    hsd_clear_error();
    return hsd_test_finish();
}
