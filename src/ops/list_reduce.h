/* Op files of the reduce family: one KILN_OP_FILE(name) per file, naming the
 * kiln_op_family that file defines as kiln_ops_<name>. */
KILN_OP_FILE(reduce)
KILN_OP_FILE(argminmax)
KILN_OP_FILE(cumsum)
KILN_OP_FILE(hardmax)
KILN_OP_FILE(topk)
KILN_OP_FILE(einsum)
KILN_OP_FILE(det)
