/* Op files of the elementwise family: one KILN_OP_FILE(name) per file, naming the
 * kiln_op_family that file defines as kiln_ops_<name>. */
KILN_OP_FILE(arith)
KILN_OP_FILE(unary)
KILN_OP_FILE(binary)
KILN_OP_FILE(variadic)
KILN_OP_FILE(where)
KILN_OP_FILE(clip)
KILN_OP_FILE(identity)
KILN_OP_FILE(cast)
