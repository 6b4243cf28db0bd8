// Each kernel translation unit is compiled once per instruction set (CMakeLists.txt) with
// RNNCORE_KERNEL_NS naming its namespace (generic, avx2, avx512). Everything such a unit
// defines, inline helpers included, lives in that namespace, so the linker can never pick an
// AVX-512 copy of a helper for the generic path. For the same reason these units use no
// std containers or algorithms over floating-point data (their weak template instances
// would be shared across units); buffer.h provides what they need.
#pragma once

#ifndef RNNCORE_KERNEL_NS
#define RNNCORE_KERNEL_NS generic
#endif
