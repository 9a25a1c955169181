"""Prompt builders for the formats StarCoder saw in training.

StarCoder (and StarCoderBase) were trained with special tokens that mark
repository metadata, commits, Jupyter notebooks and GitHub issues. Prompting in
the same shape steers the model towards that kind of text. Each helper returns
a string to pass to Model.complete(..., special=True) (the default).

References: the StarCoder paper (Li et al., 2023, section 5) and the special
tokens of the StarCoder 1 vocabulary.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence, Tuple


def stars_bucket(stars: int) -> str:
    """GitHub stars as StarCoder's buckets: 0, 1-10, 10-100, 100-1000, 1000+."""
    if stars < 0:
        raise ValueError("stars must be >= 0")
    if stars == 0:
        return "0"
    if stars < 10:
        return "1-10"
    if stars < 100:
        return "10-100"
    if stars < 1000:
        return "100-1000"
    return "1000+"


def repo_prompt(code: str, reponame: Optional[str] = None, filename: Optional[str] = None,
                stars: Optional[int] = None) -> str:
    """A file with repository metadata in front:
    <reponame>{repo}<filename>{path}<gh_stars>{bucket}\\n{code}

    Each field is optional (training dropped each one at random), but the
    order is fixed. With no metadata at all the code is returned unchanged.
    """
    head = ""
    if reponame is not None:
        head += f"<reponame>{reponame}"
    if filename is not None:
        head += f"<filename>{filename}"
    if stars is not None:
        head += f"<gh_stars>{stars_bucket(stars)}"
    return f"{head}\n{code}" if head else code


def commit_prompt(code_before: str, message: str, code_after: str = "") -> str:
    """A commit: <commit_before>{old}<commit_msg>{message}<commit_after>{new...}

    Completing it asks the model for the code after the change.
    """
    return f"<commit_before>{code_before}<commit_msg>{message}<commit_after>{code_after}"


def jupyter_prompt(cells: Sequence[Tuple[str, str]]) -> str:
    """A notebook as StarCoder saw them: <jupyter_start> then, per cell,
    <jupyter_text>{markdown}, <jupyter_code>{source} or
    <jupyter_output>{output}. `cells` holds (kind, text) pairs with kind one of
    "text", "code", "output"; ending with a "text" cell and then completing
    with "<jupyter_code>" appended asks for the next code cell.
    """
    marks = {"text": "<jupyter_text>", "code": "<jupyter_code>", "output": "<jupyter_output>"}
    out = "<jupyter_start>"
    for kind, text in cells:
        if kind not in marks:
            raise ValueError(f"cell kind must be one of {sorted(marks)}, got {kind!r}")
        out += marks[kind] + text
    return out


def issue_prompt(title: str, comments: Iterable[Tuple[str, str]], closed: bool = False) -> str:
    """A GitHub issue thread: <issue_start>Title: {title}\\n{user}: {text}
    then <issue_comment>{user}: {text} for each further comment, and
    <issue_closed> if closed. `comments` holds (user, text) pairs, the first
    being the issue's body.
    """
    parts = []
    for i, (user, text) in enumerate(comments):
        parts.append(("" if i == 0 else "<issue_comment>") + f"{user}: {text}")
    out = f"<issue_start>Title: {title}\n" + "".join(parts)
    if closed:
        out += "<issue_closed>"
    return out


def fim_prompt(prefix: str, suffix: str) -> str:
    """StarCoder's fill-in-the-middle prompt (prefix-suffix-middle order):
    <fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>

    Model.infill builds this from token ids directly (so special-token strings
    inside prefix or suffix stay plain text); this string form is for tools
    that want to see or log the prompt.
    """
    return f"<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>"
