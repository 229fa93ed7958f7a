// Leveled logging to stderr. The level comes from hsd_log_set_level() (the
// CLI's -v/-q) or the HSD_LOG environment variable (error|warn|info|debug).
#ifndef HSD_CORE_LOG_H
#define HSD_CORE_LOG_H

enum hsd_log_level { HSD_LOG_ERROR, HSD_LOG_WARN, HSD_LOG_INFO, HSD_LOG_DEBUG };

void hsd_log_set_level(enum hsd_log_level level);
enum hsd_log_level hsd_log_get_level(void);
void hsd_log(enum hsd_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define HSD_ERROR(...) hsd_log(HSD_LOG_ERROR, __VA_ARGS__)
#define HSD_WARN(...) hsd_log(HSD_LOG_WARN, __VA_ARGS__)
#define HSD_INFO(...) hsd_log(HSD_LOG_INFO, __VA_ARGS__)
#define HSD_DEBUG(...) hsd_log(HSD_LOG_DEBUG, __VA_ARGS__)

#endif
