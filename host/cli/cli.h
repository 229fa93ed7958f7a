// Subcommands of the hsd tool. Each returns the process exit code:
// 0 success, 1 runtime failure (message printed), 2 usage error.
#ifndef HSD_CLI_H
#define HSD_CLI_H

int hsd_cmd_generate(int argc, char **argv);
int hsd_cmd_edge(int argc, char **argv);
int hsd_cmd_serve(int argc, char **argv);
// Exit codes: 0 healthy, 3 degraded, 1 unhealthy/unreachable, 2 usage.
int hsd_cmd_status(int argc, char **argv);
int hsd_cmd_bench_serve(int argc, char **argv);
int hsd_cmd_run_unet(int argc, char **argv);
int hsd_cmd_run_vae(int argc, char **argv);
int hsd_cmd_run_text(int argc, char **argv);
int hsd_cmd_inspect(int argc, char **argv);
int hsd_cmd_bench(int argc, char **argv);
int hsd_cmd_devices(int argc, char **argv);
int hsd_cmd_tokenize(int argc, char **argv);

// Prints "hsd <cmd>: <message>" for a failed status and returns 1.
int hsd_cli_fail(const char *cmd);
// Parses a positive int flag value; prints a usage error and returns -1.
int hsd_cli_parse_int(const char *cmd, const char *flag, const char *v, int lo, int hi);
// --buckets "1,2,4,8": up to HSD_PIPELINE_MAX_BUCKETS row counts into out;
// returns how many, or -1 after a usage error.
int hsd_cli_parse_buckets(const char *cmd, const char *arg, int *out);
// "10,20": 1..max_n comma-separated integers in [lo, hi] into out; returns
// the count, or -1 after printing a usage error.
int hsd_cli_parse_int_list(const char *cmd, const char *flag, const char *arg, int *out,
                           int max_n, int lo, int hi);
// --warmup-sizes "512,768x512": up to 16 (width, height) pairs into out[32];
// returns how many, or -1 after a usage error.
int hsd_cli_parse_sizes(const char *cmd, const char *arg, int *out);
// SDXL micro-conditioning (diffusers _get_add_time_ids): --original-size
// WxH (original = 1: into r's original_width/height, both > 0) or --crop
// TOP,LEFT (into crop_top/left), each integer in [0, max]; -1 after a
// usage error.
struct hsd_gen_request;
int hsd_cli_parse_micro(const char *cmd, int original, const char *arg, int max,
                        struct hsd_gen_request *r);
#define HSD_CLI_MICRO_HELP                                                                  \
    "  --original-size WxH  SDXL micro-conditioning (default: --width x --height)\n"      \
    "  --crop TOP,LEFT      SDXL crop top-left conditioning (default 0,0)\n"
// --prediction v|epsilon -> *out (enum hsd_prediction_choice of
// pipeline/pipeline.h); -1 after a usage error.
int hsd_cli_parse_prediction(const char *cmd, const char *v, int *out);
#define HSD_CLI_PREDICTION_HELP                                                            \
    "  --prediction v|epsilon   the model's prediction type (default: a folder's\n"       \
    "                       scheduler config; a single file: epsilon for SD 1.x, v for\n" \
    "                       SD 2.x unless the file has a v_pred key; hsd inspect says)\n"

#endif
