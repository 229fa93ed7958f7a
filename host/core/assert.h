// HSD_ASSERT: the bug tier of docs/conventions.md "Errors". A failed assertion means
// the program itself is wrong (not the input), so it prints the expression
// and file:line and aborts. Never use it for input validation.
#ifndef HSD_CORE_ASSERT_H
#define HSD_CORE_ASSERT_H

#include <stdio.h>
#include <stdlib.h>

#define HSD_ASSERT(cond)                                                    \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__,      \
                    __LINE__, #cond);                                       \
            abort();                                                        \
        }                                                                   \
    } while (0)

#define HSD_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
