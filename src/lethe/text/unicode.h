// UTF-8 helpers for the tokenizers. Input text is bytes: invalid UTF-8 is carried through
// (as single-byte units) rather than rejected, so encoding never fails on it; see
// docs/tokenizers.md for what each component does with such bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lethe::text {

// Length of the UTF-8 sequence starting at s[i] if it is valid (1-4), else 0.
std::size_t utf8_valid_length(std::string_view s, std::size_t i);
// Splits into units: each valid code point's bytes, or one invalid byte.
std::vector<std::string_view> utf8_units(std::string_view s);
// Decodes a valid sequence at s[i] (utf8_valid_length > 0).
char32_t utf8_decode_at(std::string_view s, std::size_t i);
void utf8_append(std::string& out, char32_t cp);
// Replaces every maximal invalid subsequence with U+FFFD, as Rust's from_utf8_lossy (and so the
// Hugging Face decoders) do.
std::string utf8_lossy(std::string_view bytes);
bool utf8_is_valid(std::string_view s);

enum class NormalForm { kNFC, kNFD, kNFKC, kNFKD };
// Unicode normalization (utf8proc) of every valid run; invalid bytes are kept in place.
std::string normalize(std::string_view s, NormalForm form);
// Full lowercase mapping per code point (utf8proc); invalid bytes kept.
std::string lowercase(std::string_view s);
std::string uppercase(std::string_view s);  // simple (one-to-one) uppercase mapping

// Unicode classes (utf8proc categories) used by pre-tokenizers.
bool is_punctuation(char32_t cp);  // ASCII punctuation or any P* category
bool is_whitespace(char32_t cp);
bool is_numeric(char32_t cp);      // Nd, Nl, No (Rust's char::is_numeric)
bool is_word_char(char32_t cp);    // letters, marks, numbers, connector punctuation (\w)

// GPT-2's byte-level alphabet: every byte to a printable code point, and back.
const std::string& byte_to_unicode(std::uint8_t byte);  // UTF-8 of the mapped code point
// Inverse: the byte a code point stands for, or -1.
int unicode_to_byte(char32_t cp);

}  // namespace lethe::text
