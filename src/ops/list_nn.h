/* Op files of the nn family: one KILN_OP_FILE(name) per file, naming the
 * kiln_op_family that file defines as kiln_ops_<name>. */
/* compute-heavy ops (MatMul, Gemm, Conv, ConvTranspose, pooling) */
KILN_OP_FILE(matmul)
KILN_OP_FILE(gemm)
KILN_OP_FILE(conv)
KILN_OP_FILE(conv_transpose)
KILN_OP_FILE(col2im)
KILN_OP_FILE(pool)

/* normalisation, softmax, resize */
KILN_OP_FILE(softmax)
KILN_OP_FILE(normalization)
KILN_OP_FILE(resize)

/* attention and the sequence mixers of language models */
KILN_OP_FILE(attention)
KILN_OP_FILE(swiglu)
