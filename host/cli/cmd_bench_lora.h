// LoRA options of hsd bench unet (cmd_bench_lora.c).
#ifndef HSD_CLI_CMD_BENCH_LORA_H
#define HSD_CLI_CMD_BENCH_LORA_H

#include "models/unet.h"

// k random rank-`rank` adapters attached to u, row b of the next `rows`-row
// forwards choosing adapter b % k at scale 1; k = 0: nothing. *file (free
// with hsd_lora_file_free) is the random LoRA.
enum hsd_status hsd_bench_lora_attach(struct hsd_unet *u, int k, int rank, int rows,
                                      struct hsd_lora_file **file);
// Milliseconds to merge f into weights of its layers' shapes once (the
// fused way's cost per LoRA switch; unmerging costs the same again).
double hsd_bench_lora_merge_ms(const struct hsd_lora_file *f);

#endif
