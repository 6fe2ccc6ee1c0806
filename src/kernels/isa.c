/* Run-time instruction set checks (see isa.h). */
#include "kernels/isa.h"

bool kiln_isa_available(kiln_isa isa) {
    switch (isa) {
    case KILN_ISA_AUTO:
    case KILN_ISA_PORTABLE:
        return true;
#if defined(__x86_64__) || defined(__i386__)
    case KILN_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case KILN_ISA_AVX512:
        return __builtin_cpu_supports("avx512f");
#endif
    default:
        return false;
    }
}

kiln_isa kiln_isa_pick(kiln_isa want) {
    if (want == KILN_ISA_AUTO)
        want = KILN_ISA_AVX512;
    for (int i = (int)want; i > (int)KILN_ISA_PORTABLE; i--)
        if (kiln_isa_available((kiln_isa)i))
            return (kiln_isa)i;
    return KILN_ISA_PORTABLE;
}
