#!/usr/bin/env python3
"""Lists the C and C++ functions longer than a limit (default 80 lines), from the signature's first line to
the closing brace.

    scripts/check-function-length.py [--max N] PATH...    (directories are searched for *.c, *.cpp, *.h)

Exit status 1 when one is found, 0 otherwise. Bodies are found by brace matching, after comments, string
and character literals are blanked: a `{` at namespace or class level whose header (the text since the last
`;`, `{` or `}` there) ends in a parameter list (with const, noexcept, override, a trailing return type or a
constructor's initializer list after it) opens a function; lambdas and blocks inside a function count toward
that function. Brace-initialized tables (`= {`) are data, not functions. Good enough for this tree's style;
not a C++ parser.
"""
import argparse
import pathlib
import re
import sys

SUFFIXES = {".c", ".cpp", ".cc", ".h", ".hpp"}
TYPE_SCOPE = re.compile(r"\b(namespace|class|struct|union|enum)\b[^()]*$|\bextern\s*$")
FUNCTION_TAIL = re.compile(r"\)\s*((const|noexcept|override|final|mutable|&|&&)\s*)*(->[^;{}=]*)?$")
INITIALIZER_LIST = re.compile(r"\)\s*(noexcept\s*)?:")


def blank(text):
    """`text` with comments and literals replaced by spaces (newlines kept, so line numbers stay)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "R" and text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'R"([^(\s]*)\(', text[i:])
            if not m:
                out.append(c)
                i += 1
                continue
            end = text.find(")" + m.group(1) + '"', i)
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c in "\"'":
            if c == "'" and i > 0 and text[i - 1].isalnum():  # a digit separator (1'000), not a literal
                out.append(" ")
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "#" and (i == 0 or text[i - 1] == "\n"):  # a preprocessor line, with its continuations
            j = i
            while True:
                k = text.find("\n", j)
                if k < 0:
                    k = n
                    break
                if text[k - 1] != "\\":
                    break
                j = k + 1
            out.append(re.sub(r"[^\n]", " ", text[i:k]))
            i = k
        else:
            out.append(c)
            i += 1
    return "".join(out)


def function_name(header):
    depth, end = 0, None
    for k in range(len(header) - 1, -1, -1):
        if header[k] == ")":
            if depth == 0 and end is None:
                end = k
            depth += 1
        elif header[k] == "(":
            depth -= 1
            if depth == 0 and end is not None:
                m = re.search(r"([~\w:<>=!+\-*/\[\]]+)\s*$", header[:k])
                name = m.group(1) if m else header[:k].split()[-1:] or ["?"]
                return name if isinstance(name, str) else name[0]
    return "?"


def functions(text):
    """Yields (name, first line, last line) of each function defined in `text`."""
    code = blank(text)
    line_of = [0] * (len(code) + 1)
    line = 1
    for k, c in enumerate(code):
        line_of[k] = line
        if c == "\n":
            line += 1
    # Each scope: (kind, start offset of the function's header or None).
    scopes = [("namespace", None)]
    header_start = 0
    for k, c in enumerate(code):
        kind = scopes[-1][0]
        if c == "{":
            if kind in ("function", "data"):
                scopes.append(("block" if kind == "function" else "data", None))
                continue
            header = code[header_start:k].strip()
            if INITIALIZER_LIST.search(header) and re.search(r"\w\s*$", header) and not FUNCTION_TAIL.search(header):
                scopes.append(("init", None))  # a member's brace initializer: the header goes on
                continue
            if TYPE_SCOPE.search(header) or not header:
                scopes.append(("namespace", None))
            elif FUNCTION_TAIL.search(header) or INITIALIZER_LIST.search(header):
                start = header_start + (len(code[header_start:k]) - len(code[header_start:k].lstrip()))
                scopes.append(("function", start))
            else:
                scopes.append(("data", None))
            header_start = k + 1
        elif c == "}":
            done_kind, start = scopes.pop() if len(scopes) > 1 else ("namespace", None)
            if done_kind == "function":
                yield function_name(code[start:code.index("{", start)] if "{" in code[start:k] else code[start:k]), \
                    line_of[start], line_of[k]
            if done_kind != "init" and scopes[-1][0] not in ("function", "block"):
                header_start = k + 1
        elif c == ";" and kind not in ("function", "block", "init"):
            header_start = k + 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, default=80, help="the longest a function may be, in lines (80)")
    parser.add_argument("paths", nargs="+", type=pathlib.Path)
    args = parser.parse_args()
    files = []
    for path in args.paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        else:
            files.append(path)
    found = 0
    for file in files:
        for name, first, last in functions(file.read_text(errors="replace")):
            length = last - first + 1
            if length > args.max:
                print(f"{file}:{first}: {name}: {length} lines")
                found += 1
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
