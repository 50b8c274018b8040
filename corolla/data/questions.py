"""Questions about clips, as the seeds' video QA model reads them: words → token ids.

One Keras `TextVectorization` turns a question into `question_length` token ids (0 pads, 1 is an
unknown word), from the vocabulary `prepare` learnt on the training questions and wrote beside
the manifest (`vocabulary.txt`). Training, evaluation, the SavedModel and the server all build
it from that file, so they all read a question alike.

Example:
    vocabulary, length = learn_vocabulary(["what colour is the square", "where does it move"])
    ids = vectorizer(vocabulary, question_length=length)(["what colour is it"])   # int64 [1, length]
"""

from __future__ import annotations

import re
import string

from corolla.errors import CorollaError

MAX_QUESTION_LENGTH = 32  # tokens; longer questions are cut there
STANDARDIZE = "lower_and_strip_punctuation"


def words(question: str) -> list[str]:
    """The tokens TextVectorization makes of `question` (lower case, punctuation stripped, split on spaces)."""
    return re.sub(f"[{re.escape(string.punctuation)}]", "", question.lower()).split()  # Keras' own pattern


def learn_vocabulary(questions: list[str]) -> tuple[list[str], int]:
    """(words by falling frequency, the longest question's token count capped at MAX_QUESTION_LENGTH)."""
    counts: dict[str, int] = {}
    for question in questions:
        for word in words(question):
            counts[word] = counts.get(word, 0) + 1
    if not counts:
        raise CorollaError("The training questions hold no words. Expected a CSV of `path,question,answer` lines with questions.")
    vocabulary = sorted(counts, key=lambda word: (-counts[word], word))
    return vocabulary, min(MAX_QUESTION_LENGTH, max(len(words(question)) for question in questions))


def vectorizer(vocabulary: list[str], *, question_length: int):
    """A TextVectorization layer: string questions [n] → int64 token ids [n, question_length]."""
    import keras

    layer = keras.layers.TextVectorization(
        standardize=STANDARDIZE, split="whitespace", output_mode="int", output_sequence_length=question_length, vocabulary=vocabulary,
        name="question_vectorizer",
    )  # fmt: skip
    layer.build()  # an export can track only a built layer (Keras builds it at its first call otherwise)
    return layer


def check_question(question: str, vocabulary: list[str]) -> list[str]:
    """The words of `question` the model has never seen; CorollaError when it has no known word at all."""
    tokens = words(question)
    if not tokens:
        raise CorollaError("The question is empty. Expected a question in words, e.g. 'which way does it move'. Received: question=''")
    known = set(vocabulary)
    unknown = [word for word in tokens if word not in known]
    if len(unknown) == len(tokens):
        raise CorollaError(
            f"None of the question's words were in the training questions ({len(vocabulary)} words, e.g. "
            f"{', '.join(vocabulary[:8])}). Received: question={question!r}"
        )
    return unknown
