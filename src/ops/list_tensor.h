/* Op files of the tensor family: one KILN_OP_FILE(name) per file, naming the
 * kiln_op_family that file defines as kiln_ops_<name>. */
KILN_OP_FILE(reshape)
KILN_OP_FILE(transpose)
KILN_OP_FILE(concat_split)
KILN_OP_FILE(slice)
KILN_OP_FILE(gather)
KILN_OP_FILE(generate)
KILN_OP_FILE(select)
KILN_OP_FILE(bitcast)
