/* Internal entry points of the protobuf layer. */
#ifndef KILN_ONNX_IO_H
#define KILN_ONNX_IO_H

#include "ir/ir.h"

/* Parses a model from bytes that stay alive (the model takes a reference). */
kiln_status kiln_model_from_bytes(kiln_buffer *bytes, const char *path, const char *dir, kiln_model **out);
/* The same, within `limits` (NULL: kiln_limits_default()). */
kiln_status kiln_model_from_bytes_ex(kiln_buffer *bytes, const char *path, const char *dir,
                                     const kiln_limits *limits, kiln_model **out);

#endif
