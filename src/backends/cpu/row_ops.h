// Ops of the CPU stream that work row by row, so that any range of rows can run on any thread:
// the stream shares them out over its pool, a decoding graph runs them on one thread.
#pragma once

#include <cstdint>

#include "hal/op.h"

namespace mixserve::cpu {

/// Rows of a kGetRows op: the table rows its ids select, converted to f32 (kInvalidArgument for an
/// id outside the table, before anything is written).
void get_rows(const hal::Op& op);

/// Rows [begin, end) of a kAdd op (src1 may be one row, broadcast).
void add_rows(const hal::Op& op, int64_t begin, int64_t end);

/// Rows [begin, end) of a kRmsNorm op.
void rms_norm_rows(const hal::Op& op, int64_t begin, int64_t end);

}  // namespace mixserve::cpu
