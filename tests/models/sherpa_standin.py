"""Tiny stand-in sherpa-onnx streaming models, built with the ``onnx`` helper API (no torch, no download).

They have the interface sherpa-onnx's C++ code expects of a streaming zipformer2
(``online-zipformer2-ctc-model.cc``, ``online-zipformer2-transducer-model.cc``):
the custom metadata it reads (``encoder_dims``, ``num_encoder_layers``, ``T``,
``decode_chunk_len`` ...), the input ``x`` of ``T`` fbank frames followed by the
6-per-layer cache tensors plus ``embed_states`` and ``processed_lens``, and the
same states back as outputs; and of a streaming paraformer
(``online-paraformer-model.cc``, ``online-recognizer-paraformer-impl.h``): LFR/CMVN
metadata, CIF weights from the encoder, an FSMN cache through the decoder. Their
weights are random: the text they produce means nothing. Two properties make
them useful for testing the streaming contract anyway:

* silence decodes to blank: the blank score rises as the mean log-mel energy
  falls, and the other scores depend on the spectral shape only (fbank of
  digital silence is log(FLT_EPSILON) = -15.9 in every bin: flat), so trailing
  silence counts towards sherpa's endpoint rules while speech yields tokens;
* the output of a chunk depends on the previous chunk through a cache tensor
  (``cached_conv1_0``, the paraformer's ``in_cache_0``), so a stream that leaked
  state into another would change that other stream's text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

ENCODER_DIM = 8
LEFT_CONTEXT = 4
KEY_DIM = 2  # query_head_dims * num_heads
VALUE_DIM = 2
KERNEL = 3
T_FRAMES = 45
"""Frames the model reads per chunk (sherpa's ChunkLength)."""
CHUNK_SHIFT = 32
"""Frames it consumes per chunk (decode_chunk_len): 320 ms of 10 ms frames."""
OUT_FRAMES = CHUNK_SHIFT // 4
"""Output frames per chunk, at the 4x subsampling sherpa assumes for timestamps and endpoints."""
FEATURE_DIM = 80
SILENCE_LOGMEL = -15.94
"""kaldi-native-fbank's log energy floor (log FLT_EPSILON), the value of every bin of digital silence."""
BLANK_THRESHOLD = -9.0
"""Mean log-mel energy below which a frame is most likely blank."""

LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]


@dataclass(frozen=True)
class StandIn:
    directory: Path
    tokens: list[str]


def _metadata() -> dict[str, str]:
    return {
        "model_type": "zipformer2", "version": "1", "model_author": "tingshuo tests (random stand-in)",
        "encoder_dims": str(ENCODER_DIM), "query_head_dims": str(KEY_DIM), "value_head_dims": str(VALUE_DIM),
        "num_heads": "1", "num_encoder_layers": "1", "cnn_module_kernels": str(KERNEL),
        "left_context_len": str(LEFT_CONTEXT), "T": str(T_FRAMES), "decode_chunk_len": str(CHUNK_SHIFT),
    }


def _state_shapes() -> list[tuple[str, list, int]]:
    """(name, shape, onnx elem type) of the cache tensors, in sherpa's order; 'N' is the batch."""
    from onnx import TensorProto

    f = TensorProto.FLOAT
    return [
        ("cached_key_0", [LEFT_CONTEXT, "N", KEY_DIM], f),
        ("cached_nonlin_attn_0", [1, "N", LEFT_CONTEXT, 3 * ENCODER_DIM // 4], f),
        ("cached_val1_0", [LEFT_CONTEXT, "N", VALUE_DIM], f),
        ("cached_val2_0", [LEFT_CONTEXT, "N", VALUE_DIM], f),
        ("cached_conv1_0", ["N", ENCODER_DIM, KERNEL // 2], f),
        ("cached_conv2_0", ["N", ENCODER_DIM, KERNEL // 2], f),
        ("embed_states", ["N", 128, 3, ((FEATURE_DIM - 1) // 2 - 1) // 2], f),
        ("processed_lens", ["N"], TensorProto.INT64),
    ]


def _encoder_graph(head_name: str, head_dim: int, rng: np.random.Generator, *, log_softmax: bool,
                   blank_column: bool):
    """x [N,T,80] + states -> head [N,OUT_FRAMES,head_dim] + new states.

    The head is a linear map of each output frame's level and spectral shape plus
    a term from the previous chunk's spectral shape, carried in ``cached_conv1_0``.
    """
    from onnx import TensorProto, helper, numpy_helper

    w = rng.normal(0.0, 0.1, (FEATURE_DIM, head_dim)).astype(np.float32)
    level = np.zeros(head_dim, dtype=np.float32)
    b = np.zeros(head_dim, dtype=np.float32)
    carry = rng.normal(0.0, 0.1, (FEATURE_DIM, ENCODER_DIM)).astype(np.float32)
    carry_out = rng.normal(0.0, 0.3, (ENCODER_DIM, head_dim)).astype(np.float32)
    if blank_column:  # blank score = 4 * (BLANK_THRESHOLD - mean log-mel); the spectral shape never moves it
        w[:, 0] = 0.0
        carry_out[:, 0] = 0.0
        level[0] = -4.0
        b[0] = 4.0 * BLANK_THRESHOLD
    inits = [
        numpy_helper.from_array(w, "w"), numpy_helper.from_array(level, "level_w"), numpy_helper.from_array(b, "b"),
        numpy_helper.from_array(carry, "carry"), numpy_helper.from_array(carry_out, "carry_out"),
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array([CHUNK_SHIFT], np.int64), "shift"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array([0, OUT_FRAMES, 4, FEATURE_DIM], np.int64), "frames_shape"),
        numpy_helper.from_array(np.array([-1, ENCODER_DIM, 1], np.int64), "cache_shape"),
        numpy_helper.from_array(np.array([-1, ENCODER_DIM], np.int64), "flat_shape"),
        numpy_helper.from_array(np.array([OUT_FRAMES], np.int64), "out_frames"),
    ]
    nodes = [
        # Each output frame is the mean of 4 input frames, split into its level (mean log-mel over the
        # bins) and its spectral shape (the rest). Digital silence has a flat spectrum: shape zero.
        helper.make_node("Slice", ["x", "zero", "shift", "axis1"], ["x_used"]),
        helper.make_node("Reshape", ["x_used", "frames_shape"], ["x_groups"]),
        helper.make_node("ReduceMean", ["x_groups"], ["frames"], axes=[2], keepdims=0),
        helper.make_node("ReduceMean", ["frames"], ["frame_level"], axes=[2], keepdims=1),
        helper.make_node("Sub", ["frames", "frame_level"], ["shape"]),
        helper.make_node("MatMul", ["shape", "w"], ["shape_scores"]),
        helper.make_node("Mul", ["frame_level", "level_w"], ["level_scores"]),
        helper.make_node("Add", ["shape_scores", "level_scores"], ["frame_scores"]),
        helper.make_node("Add", ["frame_scores", "b"], ["frame_scores_b"]),
        helper.make_node("Reshape", ["cached_conv1_0", "flat_shape"], ["previous"]),
        helper.make_node("MatMul", ["previous", "carry_out"], ["previous_scores"]),
        helper.make_node("Unsqueeze", ["previous_scores", "axis1"], ["previous_scores_t"]),
        helper.make_node("Add", ["frame_scores_b", "previous_scores_t"], ["scores"]),
        helper.make_node("LogSoftmax" if log_softmax else "Identity", ["scores"], [head_name],
                         **({"axis": -1} if log_softmax else {})),
        helper.make_node("ReduceMean", ["shape"], ["chunk_shape"], axes=[1], keepdims=0),
        helper.make_node("MatMul", ["chunk_shape", "carry"], ["chunk_code"]),
        helper.make_node("Reshape", ["chunk_code", "cache_shape"], ["new_cached_conv1_0"]),
        helper.make_node("Add", ["processed_lens", "out_frames"], ["new_processed_lens"]),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", T_FRAMES, FEATURE_DIM])]
    outputs = [helper.make_tensor_value_info(head_name, TensorProto.FLOAT, ["N", OUT_FRAMES, head_dim])]
    for name, shape, elem in _state_shapes():
        inputs.append(helper.make_tensor_value_info(name, elem, shape))
        outputs.append(helper.make_tensor_value_info(f"new_{name}", elem, shape))
        if name not in ("cached_conv1_0", "processed_lens"):
            nodes.append(helper.make_node("Identity", [name], [f"new_{name}"]))
    return helper.make_graph(nodes, "standin_encoder", inputs, outputs, inits)


def _save(graph, path: Path, metadata: dict[str, str]) -> None:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="tingshuo-tests")
    model.ir_version = 8  # old enough for any onnxruntime that sherpa-onnx bundles
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def _write_tokens(path: Path, symbols: list[str]) -> None:
    path.write_text("".join(f"{s} {i}\n" for i, s in enumerate(symbols)), encoding="utf-8")


def build_zipformer2_ctc(directory: Path, *, seed: int = 0) -> StandIn:
    """``model.onnx`` + ``tokens.txt`` that sherpa-onnx loads with ``from_zipformer2_ctc``."""
    directory.mkdir(parents=True, exist_ok=True)
    tokens = ["<blk>", *LETTERS]
    graph = _encoder_graph("log_probs", len(tokens), np.random.default_rng(seed), log_softmax=True,
                           blank_column=True)
    _save(graph, directory / "model.onnx", _metadata())
    _write_tokens(directory / "tokens.txt", tokens)
    return StandIn(directory, tokens)


JOINER_DIM = 16
CONTEXT_SIZE = 2


def build_zipformer2_transducer(directory: Path, *, seed: int = 0) -> StandIn:
    """``encoder.onnx``/``decoder.onnx``/``joiner.onnx`` + ``tokens.txt`` for ``from_transducer``.

    The encoder is the CTC stand-in's with a ``JOINER_DIM`` output; the decoder
    embeds the last ``CONTEXT_SIZE`` tokens; the joiner adds both and projects
    to the vocabulary, blank (id 0) winning on silence.
    """
    from onnx import TensorProto, helper, numpy_helper

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tokens = ["<blk>", *LETTERS]
    vocab = len(tokens)
    encoder = _encoder_graph("encoder_out", JOINER_DIM, rng, log_softmax=False, blank_column=True)
    _save(encoder, directory / "encoder.onnx", _metadata())

    embedding = rng.normal(0.0, 0.5, (vocab, JOINER_DIM)).astype(np.float32)
    embedding[:, 0] = 0.0  # column 0 is the blank score: the context must not move it
    decoder = helper.make_graph(
        [helper.make_node("Gather", ["embedding", "y"], ["embedded"], axis=0),
         helper.make_node("ReduceMean", ["embedded"], ["decoder_out"], axes=[1], keepdims=0)],
        "standin_decoder",
        [helper.make_tensor_value_info("y", TensorProto.INT64, ["N", CONTEXT_SIZE])],
        [helper.make_tensor_value_info("decoder_out", TensorProto.FLOAT, ["N", JOINER_DIM])],
        [numpy_helper.from_array(embedding, "embedding")],
    )
    _save(decoder, directory / "decoder.onnx", {"context_size": str(CONTEXT_SIZE), "vocab_size": str(vocab)})

    # The encoder's column 0 carries the blank score; the joiner routes it to token 0 and the other
    # columns, with the decoder's embedding, to the other tokens.
    project = rng.normal(0.0, 0.5, (JOINER_DIM, vocab)).astype(np.float32)
    project[0, :] = 0.0
    project[:, 0] = 0.0
    project[0, 0] = 1.0
    joiner = helper.make_graph(
        [helper.make_node("Add", ["encoder_out", "decoder_out"], ["joint"]),
         helper.make_node("MatMul", ["joint", "project"], ["logit"])],
        "standin_joiner",
        [helper.make_tensor_value_info("encoder_out", TensorProto.FLOAT, ["N", JOINER_DIM]),
         helper.make_tensor_value_info("decoder_out", TensorProto.FLOAT, ["N", JOINER_DIM])],
        [helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["N", vocab])],
        [numpy_helper.from_array(project, "project")],
    )
    _save(joiner, directory / "joiner.onnx", {"joiner_dim": str(JOINER_DIM)})
    _write_tokens(directory / "tokens.txt", tokens)
    return StandIn(directory, tokens)


PARAFORMER_DIM = 8
LFR_WINDOW, LFR_SHIFT = 7, 6
"""Low frame rate stacking the streaming paraformer expects: 7 frames of 80 bins, every 6 frames."""
PARAFORMER_SILENCE_THRESHOLD = 0.0
"""Mean log-mel of a frame below which the stand-in's CIF weight is about zero (sherpa feeds
paraformers samples scaled to int16 range, so speech sits around +5..+15 and silence at -15.9)."""


def build_paraformer(directory: Path, *, seed: int = 0) -> StandIn:
    """``encoder.onnx``/``decoder.onnx`` + ``tokens.txt`` for ``from_paraformer``.

    Interface of ``online-paraformer-model.cc`` and ``online-recognizer-paraformer-impl.h``:
    the encoder maps LFR features to ``enc``, ``enc_len`` and the CIF weights
    ``alphas`` (about 0.45 per frame on speech, about 0 on silence, so sherpa's CIF
    fires a token every two or three speech frames); the decoder maps the fired
    acoustic embeddings (plus one FSMN cache, which carries the previous chunk)
    to ``logits`` and ``sample_ids``.
    """
    from onnx import TensorProto, helper, numpy_helper

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tokens = ["<blank>", *LETTERS]
    vocab, dim, feat = len(tokens), PARAFORMER_DIM, FEATURE_DIM * LFR_WINDOW
    metadata = {
        "vocab_size": str(vocab), "lfr_window_size": str(LFR_WINDOW), "lfr_window_shift": str(LFR_SHIFT),
        "encoder_output_size": str(dim), "decoder_num_blocks": "1", "decoder_kernel_size": "3",
        # CMVN: identity once sherpa multiplies inv_stddev by sqrt(encoder_output_size).
        "neg_mean": ",".join(["0"] * feat), "inv_stddev": ",".join([repr(float(1 / np.sqrt(dim)))] * feat),
    }
    project = rng.normal(0.0, 0.1, (feat, dim)).astype(np.float32)
    encoder = helper.make_graph(
        [helper.make_node("ReduceMean", ["speech"], ["level_t"], axes=[2], keepdims=1),
         helper.make_node("Sub", ["speech", "level_t"], ["shape"]),
         helper.make_node("MatMul", ["shape", "project"], ["enc"]),
         helper.make_node("Identity", ["speech_lengths"], ["enc_len"]),
         helper.make_node("ReduceMean", ["speech"], ["level"], axes=[2], keepdims=0),
         helper.make_node("Sub", ["level", "threshold"], ["above"]),
         helper.make_node("Sigmoid", ["above"], ["gate"]),
         helper.make_node("Mul", ["gate", "max_alpha"], ["alphas"])],
        "standin_paraformer_encoder",
        [helper.make_tensor_value_info("speech", TensorProto.FLOAT, [1, "T", feat]),
         helper.make_tensor_value_info("speech_lengths", TensorProto.INT32, [1])],
        [helper.make_tensor_value_info("enc", TensorProto.FLOAT, [1, "T", dim]),
         helper.make_tensor_value_info("enc_len", TensorProto.INT32, [1]),
         helper.make_tensor_value_info("alphas", TensorProto.FLOAT, [1, "T"])],
        [numpy_helper.from_array(project, "project"),
         numpy_helper.from_array(np.array(PARAFORMER_SILENCE_THRESHOLD, np.float32), "threshold"),
         numpy_helper.from_array(np.array(0.45, np.float32), "max_alpha")],
    )
    _save(encoder, directory / "encoder.onnx", metadata)

    out = rng.normal(0.0, 1.0, (dim, vocab)).astype(np.float32)
    out[:, 0] = 0.0  # CIF fired, so a token was heard: blank only by chance
    carry = rng.normal(0.0, 0.2, (dim, vocab)).astype(np.float32)
    carry[:, 0] = 0.0
    decoder = helper.make_graph(
        [helper.make_node("MatMul", ["acoustic_embeds", "out"], ["token_scores"]),
         helper.make_node("ReduceMean", ["in_cache_0"], ["previous"], axes=[2], keepdims=0),
         helper.make_node("MatMul", ["previous", "carry"], ["previous_scores"]),
         helper.make_node("Unsqueeze", ["previous_scores", "axis1"], ["previous_scores_t"]),
         helper.make_node("Add", ["token_scores", "previous_scores_t"], ["logits"]),
         helper.make_node("ArgMax", ["logits"], ["sample_ids"], axis=-1, keepdims=0),
         helper.make_node("ReduceMean", ["acoustic_embeds"], ["chunk_mean"], axes=[1], keepdims=0),
         helper.make_node("Unsqueeze", ["chunk_mean", "axis2"], ["chunk_mean_t"]),
         helper.make_node("Concat", ["chunk_mean_t", "chunk_mean_t"], ["out_cache_0"], axis=2)],
        "standin_paraformer_decoder",
        [helper.make_tensor_value_info("enc", TensorProto.FLOAT, [1, "T", dim]),
         helper.make_tensor_value_info("enc_len", TensorProto.INT32, [1]),
         helper.make_tensor_value_info("acoustic_embeds", TensorProto.FLOAT, [1, "U", dim]),
         helper.make_tensor_value_info("acoustic_embeds_len", TensorProto.INT32, [1]),
         helper.make_tensor_value_info("in_cache_0", TensorProto.FLOAT, [1, dim, 2])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, "U", vocab]),
         helper.make_tensor_value_info("sample_ids", TensorProto.INT64, [1, "U"]),
         helper.make_tensor_value_info("out_cache_0", TensorProto.FLOAT, [1, dim, 2])],
        [numpy_helper.from_array(out, "out"), numpy_helper.from_array(carry, "carry"),
         numpy_helper.from_array(np.array([1], np.int64), "axis1"),
         numpy_helper.from_array(np.array([2], np.int64), "axis2")],
    )
    _save(decoder, directory / "decoder.onnx", {})
    _write_tokens(directory / "tokens.txt", tokens)
    return StandIn(directory, tokens)
