/* Op files of the misc family: one KILN_OP_FILE(name) per file, naming the
 * kiln_op_family that file defines as kiln_ops_<name>. */
KILN_OP_FILE(legacy)
KILN_OP_FILE(loss)
KILN_OP_FILE(nms)
KILN_OP_FILE(gridsample)
KILN_OP_FILE(unique)
KILN_OP_FILE(quantize)
KILN_OP_FILE(shrink)
KILN_OP_FILE(dft)
KILN_OP_FILE(window)
KILN_OP_FILE(strnorm)
KILN_OP_FILE(roialign)
KILN_OP_FILE(tfidf)
