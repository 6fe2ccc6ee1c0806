/* Instruction sets kernels pick at run time. Each vectorised kernel has a
 * portable C form and, on x86, AVX2 (+FMA) and AVX-512F variants compiled
 * with target attributes; which one runs depends on the CPU, never on the
 * build machine. */
#ifndef KILN_KERNELS_ISA_H
#define KILN_KERNELS_ISA_H

#include <stdbool.h>

typedef enum kiln_isa {
    KILN_ISA_AUTO = 0, /* the best the CPU has */
    KILN_ISA_PORTABLE,
    KILN_ISA_AVX2, /* with FMA */
    KILN_ISA_AVX512
} kiln_isa;

/* Whether the CPU runs the given set (AUTO and PORTABLE: always). */
bool kiln_isa_available(kiln_isa isa);
/* The best available set no wider than `want` (AUTO: the best there is). */
kiln_isa kiln_isa_pick(kiln_isa want);

#endif
