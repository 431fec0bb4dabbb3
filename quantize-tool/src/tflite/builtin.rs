//! TFLite `BuiltinOperator` codes the importer lowers, and every code's name for messages.

/// ADD.
pub const ADD: i32 = 0;
/// AVERAGE_POOL_2D.
pub const AVERAGE_POOL_2D: i32 = 1;
/// CONCATENATION.
pub const CONCATENATION: i32 = 2;
/// CONV_2D.
pub const CONV_2D: i32 = 3;
/// DEPTHWISE_CONV_2D.
pub const DEPTHWISE_CONV_2D: i32 = 4;
/// DEQUANTIZE.
pub const DEQUANTIZE: i32 = 6;
/// FULLY_CONNECTED.
pub const FULLY_CONNECTED: i32 = 9;
/// LOGISTIC.
pub const LOGISTIC: i32 = 14;
/// MAX_POOL_2D.
pub const MAX_POOL_2D: i32 = 17;
/// MUL.
pub const MUL: i32 = 18;
/// RELU.
pub const RELU: i32 = 19;
/// RELU6.
pub const RELU6: i32 = 21;
/// RESHAPE.
pub const RESHAPE: i32 = 22;
/// SOFTMAX.
pub const SOFTMAX: i32 = 25;
/// TANH.
pub const TANH: i32 = 28;
/// PAD.
pub const PAD: i32 = 34;
/// MEAN.
pub const MEAN: i32 = 40;
/// SQUEEZE.
pub const SQUEEZE: i32 = 43;
/// QUANTIZE.
pub const QUANTIZE: i32 = 114;
/// HARD_SWISH.
pub const HARD_SWISH: i32 = 117;

/// Codes the importer lowers (QUANTIZE and DEQUANTIZE only at the model's edges).
pub const SUPPORTED: &[i32] = &[
    ADD,
    AVERAGE_POOL_2D,
    CONCATENATION,
    CONV_2D,
    DEPTHWISE_CONV_2D,
    DEQUANTIZE,
    FULLY_CONNECTED,
    LOGISTIC,
    MAX_POOL_2D,
    MUL,
    RELU,
    RELU6,
    RESHAPE,
    SOFTMAX,
    TANH,
    PAD,
    MEAN,
    SQUEEZE,
    QUANTIZE,
    HARD_SWISH,
];

/// TFLite's names of builtin codes 0..=127, in code order (schema.fbs).
const NAMES: &[&str] = &[
    "ADD",
    "AVERAGE_POOL_2D",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DEPTH_TO_SPACE",
    "DEQUANTIZE",
    "EMBEDDING_LOOKUP",
    "FLOOR",
    "FULLY_CONNECTED",
    "HASHTABLE_LOOKUP",
    "L2_NORMALIZATION",
    "L2_POOL_2D",
    "LOCAL_RESPONSE_NORMALIZATION",
    "LOGISTIC",
    "LSH_PROJECTION",
    "LSTM",
    "MAX_POOL_2D",
    "MUL",
    "RELU",
    "RELU_N1_TO_1",
    "RELU6",
    "RESHAPE",
    "RESIZE_BILINEAR",
    "RNN",
    "SOFTMAX",
    "SPACE_TO_DEPTH",
    "SVDF",
    "TANH",
    "CONCAT_EMBEDDINGS",
    "SKIP_GRAM",
    "CALL",
    "CUSTOM",
    "EMBEDDING_LOOKUP_SPARSE",
    "PAD",
    "UNIDIRECTIONAL_SEQUENCE_RNN",
    "GATHER",
    "BATCH_TO_SPACE_ND",
    "SPACE_TO_BATCH_ND",
    "TRANSPOSE",
    "MEAN",
    "SUB",
    "DIV",
    "SQUEEZE",
    "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "STRIDED_SLICE",
    "BIDIRECTIONAL_SEQUENCE_RNN",
    "EXP",
    "TOPK_V2",
    "SPLIT",
    "LOG_SOFTMAX",
    "DELEGATE",
    "BIDIRECTIONAL_SEQUENCE_LSTM",
    "CAST",
    "PRELU",
    "MAXIMUM",
    "ARG_MAX",
    "MINIMUM",
    "LESS",
    "NEG",
    "PADV2",
    "GREATER",
    "GREATER_EQUAL",
    "LESS_EQUAL",
    "SELECT",
    "SLICE",
    "SIN",
    "TRANSPOSE_CONV",
    "SPARSE_TO_DENSE",
    "TILE",
    "EXPAND_DIMS",
    "EQUAL",
    "NOT_EQUAL",
    "LOG",
    "SUM",
    "SQRT",
    "RSQRT",
    "SHAPE",
    "POW",
    "ARG_MIN",
    "FAKE_QUANT",
    "REDUCE_PROD",
    "REDUCE_MAX",
    "PACK",
    "LOGICAL_OR",
    "ONE_HOT",
    "LOGICAL_AND",
    "LOGICAL_NOT",
    "UNPACK",
    "REDUCE_MIN",
    "FLOOR_DIV",
    "REDUCE_ANY",
    "SQUARE",
    "ZEROS_LIKE",
    "FILL",
    "FLOOR_MOD",
    "RANGE",
    "RESIZE_NEAREST_NEIGHBOR",
    "LEAKY_RELU",
    "SQUARED_DIFFERENCE",
    "MIRROR_PAD",
    "ABS",
    "SPLIT_V",
    "UNIQUE",
    "CEIL",
    "REVERSE_V2",
    "ADD_N",
    "GATHER_ND",
    "COS",
    "WHERE",
    "RANK",
    "ELU",
    "REVERSE_SEQUENCE",
    "MATRIX_DIAG",
    "QUANTIZE",
    "MATRIX_SET_DIAG",
    "ROUND",
    "HARD_SWISH",
    "IF",
    "WHILE",
    "NON_MAX_SUPPRESSION_V4",
    "NON_MAX_SUPPRESSION_V5",
    "SCATTER_ND",
    "SELECT_V2",
    "DENSIFY",
    "SEGMENT_SUM",
    "BATCH_MATMUL",
];

/// TFLite's name of builtin code `code` ("code N" past the names listed here).
pub fn name(code: i32) -> String {
    usize::try_from(code)
        .ok()
        .and_then(|c| NAMES.get(c))
        .map_or_else(|| format!("code {code}"), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_schema_order() {
        let named = [
            (ADD, "ADD"),
            (CONV_2D, "CONV_2D"),
            (DEQUANTIZE, "DEQUANTIZE"),
            (FULLY_CONNECTED, "FULLY_CONNECTED"),
            (RELU6, "RELU6"),
            (SOFTMAX, "SOFTMAX"),
            (PAD, "PAD"),
            (MEAN, "MEAN"),
            (SQUEEZE, "SQUEEZE"),
            (QUANTIZE, "QUANTIZE"),
            (HARD_SWISH, "HARD_SWISH"),
        ];
        for (code, expected) in named {
            assert_eq!(name(code), expected);
        }
        assert_eq!(name(126), "BATCH_MATMUL");
        assert_eq!(name(400), "code 400");
    }
}
