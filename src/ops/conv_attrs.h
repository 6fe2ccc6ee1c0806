/* Window attributes (strides, dilations, pads, auto_pad) of Conv,
 * ConvTranspose and the pools, read from a node into a kernels/conv.h
 * geometry. */
#ifndef KILN_CONV_ATTRS_H
#define KILN_CONV_ATTRS_H

#include "ir/ir.h"
#include "kernels/conv.h"

/* Reads strides, dilations (when use_dil), pads and auto_pad for `nsp`
 * spatial dims into g (k must be set already), validating every value. */
kiln_status kiln_conv_read_attrs(kiln_conv_geom *g, const kiln_node *node, bool use_dil);

#endif
