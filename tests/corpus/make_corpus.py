#!/usr/bin/env python3
"""Regenerates the malformed-input corpus under tests/corpus/ (committed; CI does not run this).

Each file is one way a safetensors file or config.json can be broken. manifest.json maps every
file to a fragment the lethe::Error message must contain. The safetensors files double as the
seed corpus of the libFuzzer target (tests/fuzz/).
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def st(header, data=b"", raw_header=None, length=None):
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    n = len(h) if length is None else length
    return struct.pack("<Q", n) + h + data


F4 = struct.pack("<4f", 1, 2, 3, 4)
ok = {"__metadata__": {"format": "pt"}, "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}

safetensors = {
    "valid.safetensors": (st(ok, F4), None),
    "empty.safetensors": (b"", "8-byte header length"),
    "short.safetensors": (b"\x05\x00\x00", "8-byte header length"),
    "header_past_eof.safetensors": (st(ok, F4, length=4096), "runs past the end of the file"),
    "header_huge.safetensors": (st(ok, F4, length=1 << 60), "exceeds the limit"),
    "not_json.safetensors": (st(None, b"", raw_header=b"{\"a\": [1, 2"), "not valid JSON"),
    "not_object.safetensors": (st(None, b"", raw_header=b"[1, 2, 3]"), "does not start with '{'"),
    "invalid_utf8.safetensors": (st(None, F4, raw_header=b'{"\xff\xfe": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}'), "not valid JSON"),
    "truncated_data.safetensors": (st(ok, F4[:10]), "run past the end of the data section"),
    "unknown_dtype.safetensors": (st({"a": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}}, b"\0" * 4), "unknown dtype 'F8_E4M3'"),
    "negative_shape.safetensors": (st({"a": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, F4), "non-negative integer"),
    "float_shape.safetensors": (st({"a": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 16]}}, F4), "non-negative integer"),
    "size_mismatch.safetensors": (st({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}, F4[:8]), "hold 8 bytes but"),
    "overlap.safetensors": (st({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, F4), "overlaps"),
    "gap.safetensors": (st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                            "b": {"dtype": "F32", "shape": [1], "data_offsets": [12, 16]}}, F4), "gap in the data section"),
    "out_of_range.safetensors": (st({"a": {"dtype": "F32", "shape": [256], "data_offsets": [0, 1024]}}, F4), "run past the end of the data section"),
    "trailing_bytes.safetensors": (st(ok, F4 + b"\0" * 8), "trailing bytes"),
    "end_before_begin.safetensors": (st({"a": {"dtype": "F32", "shape": [0], "data_offsets": [16, 0]}}, F4), "end before begin"),
    "offsets_not_pair.safetensors": (st({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0]}}, F4), "must be an array [begin, end]"),
    "missing_dtype.safetensors": (st({"a": {"shape": [4], "data_offsets": [0, 16]}}, F4), "missing string 'dtype'"),
    "extra_field.safetensors": (st({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16], "x": 1}}, F4), "unexpected field 'x'"),
    "metadata_not_string.safetensors": (st({"__metadata__": {"format": 1}, **{k: v for k, v in ok.items() if k != "__metadata__"}}, F4), "must be a string"),
    "shape_overflow.safetensors": (st({"a": {"dtype": "F32", "shape": [1 << 40, 1 << 40], "data_offsets": [0, 16]}}, F4), "overflows"),
    "entry_not_object.safetensors": (st({"a": [1, 2]}, b""), "entry must be an object"),
}

llama = {
    "model_type": "llama", "vocab_size": 32, "hidden_size": 16, "num_hidden_layers": 1,
    "num_attention_heads": 2, "num_key_value_heads": 1, "intermediate_size": 24,
}


def cfg(**changes):
    c = dict(llama)
    for k, v in changes.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return json.dumps(c, indent=1).encode()


configs = {
    "valid.json": (cfg(), None),
    "unknown_model_type.json": (cfg(model_type="mamba"), "unsupported model_type 'mamba'"),
    "missing_model_type.json": (cfg(model_type=None), "missing required key 'model_type'"),
    "missing_hidden_size.json": (cfg(hidden_size=None), "missing required key 'hidden_size'"),
    "wrong_type.json": (cfg(num_hidden_layers="2"), "'num_hidden_layers' must be an integer"),
    "bad_kv_heads.json": (cfg(num_key_value_heads=3), "must divide the heads"),
    "negative_size.json": (cfg(intermediate_size=-5), "intermediate size must be positive"),
    "rope_scaling.json": (cfg(rope_scaling={"type": "linear", "factor": 2.0}), "'rope_scaling'"),
    "unknown_activation.json": (cfg(hidden_act="gelu_magic"), "unsupported activation 'gelu_magic'"),
    "not_utf8.json": (cfg()[:-2] + b', "name": "\xff\xfe"}', "not valid JSON"),
    "truncated.json": (cfg()[:40], "not valid JSON"),
    "not_object.json": (b"[1, 2]", "must be a JSON object"),
    "gpt2_cross_attention.json": (json.dumps({"model_type": "gpt2", "vocab_size": 10, "n_embd": 8, "n_layer": 1, "n_head": 2, "add_cross_attention": True}).encode(), "'add_cross_attention'"),
    "neox_bad_rotary.json": (json.dumps({"model_type": "gpt_neox", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16, "rotary_pct": 1.5}).encode(), "rotary_pct must be in (0, 1]"),
}


def tok(**changes):
    t = {
        "version": "1.0", "added_tokens": [], "normalizer": None, "post_processor": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
        "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
    }
    for k, v in changes.items():
        if v is None:
            t.pop(k, None)
        else:
            t[k] = v
    return json.dumps(t, indent=1).encode()


tokenizers = {
    "valid.json": (tok(), None),
    "missing_model.json": (tok(model=None), "missing field 'model'"),
    "bad_merge_token.json": (tok(model={"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a c"]}), "merges[0]"),
    "bad_merge_form.json": (tok(model={"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b c"]}), "merges[0]"),
    "merged_not_in_vocab.json": (tok(model={"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": [["a", "b"]]}), "the merged token 'ab' is not in the vocab"),
    "unknown_normalizer.json": (tok(normalizer={"type": "BertNormalizer"}), "unsupported normalizer type 'BertNormalizer'"),
    "unknown_pre_tokenizer.json": (tok(pre_tokenizer={"type": "Sequence", "pretokenizers": [{"type": "ByteLevel"}, {"type": "UnicodeScripts"}]}), "pre_tokenizer.pretokenizers[1]: unsupported pre_tokenizer type 'UnicodeScripts'"),
    "unknown_decoder.json": (tok(decoder={"type": "WordPiece"}), "unsupported decoder type 'WordPiece'"),
    "unknown_post_processor.json": (tok(post_processor={"type": "RobertaProcessing"}), "unsupported post_processor type 'RobertaProcessing'"),
    "unknown_model.json": (tok(model={"type": "Unigram", "vocab": []}), "unsupported model type 'Unigram'"),
    "invalid_regex.json": (tok(pre_tokenizer={"type": "Split", "pattern": {"Regex": "(a|b"}, "behavior": "Isolated", "invert": False}), "pre_tokenizer.pattern: invalid regex"),
    "bad_behavior.json": (tok(pre_tokenizer={"type": "Split", "pattern": {"String": " "}, "behavior": "Sideways"}), "unknown split behavior 'Sideways'"),
    "missing_vocab.json": (tok(model={"type": "BPE", "merges": []}), "missing object 'vocab'"),
    "bad_unk.json": (tok(model={"type": "BPE", "vocab": {"a": 0}, "merges": [], "unk_token": "<unk>"}), "unk_token '<unk>' is not in the vocab"),
    "dropout.json": (tok(model={"type": "BPE", "vocab": {"a": 0}, "merges": [], "dropout": 0.1}), "dropout"),
    "template_unknown_special.json": (tok(post_processor={"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {}}), "special token '<s>' is not defined"),
    "not_utf8.json": (tok()[:-2] + b', "x": "\xff\xfe"}', "not valid JSON"),
    "truncated.json": (tok()[:100], "not valid JSON"),
    "missing_type.json": (tok(normalizer={"lowercase": True}), "normalizer: missing string field 'type'"),
}


def write(folder, table):
    manifest = {}
    for name, (data, expect) in table.items():
        with open(os.path.join(HERE, folder, name), "wb") as f:
            f.write(data)
        manifest[name] = expect
    with open(os.path.join(HERE, folder, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


write("safetensors", safetensors)
write("config", configs)
write("tokenizer", tokenizers)
