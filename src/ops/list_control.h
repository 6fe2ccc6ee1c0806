/* Op files of the control family: one KILN_OP_FILE(name) per file, naming the
 * kiln_op_family that file defines as kiln_ops_<name>. */
KILN_OP_FILE(control)
KILN_OP_FILE(sequence)
KILN_OP_FILE(optional)
