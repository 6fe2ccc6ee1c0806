/* Op files of the nn family: one KILN_OP_FILE(name) per file, naming the
 * kiln_op_family that file defines as kiln_ops_<name>. */

/* normalisation, softmax, resize */
KILN_OP_FILE(softmax)
KILN_OP_FILE(normalization)
KILN_OP_FILE(resize)
