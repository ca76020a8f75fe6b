#!/usr/bin/env python3
"""Write crates/seqmatch/tests/golden.json: difflib.SequenceMatcher(None, a, b).ratio() for a
fixed, seeded set of string pairs, so the Rust port can be checked against CPython itself.

Usage: python3 scripts/gen-difflib-golden.py [OUTPUT]   (default: crates/seqmatch/tests/golden.json)

The pairs cover CJK, mixed Chinese/English, emoji, empty strings, identical and disjoint strings,
long strings (200+ and 1000+ chars, where difflib's autojunk rule applies) and random strings from
small alphabets (many ties in find_longest_match). Floats are written with repr(), i.e. exactly.
"""

import difflib
import json
import os
import random
import sys
import tempfile

SEED = 20240606

KB_LIKE = [
    "依據公司規範:員工每年享有特休假,年資滿一年者給予七日。",
    "依據公司規範:VPN 僅限公司配發之筆電使用,連線須經 MFA 驗證。",
    "依據公司規範:出差費用需於返回後 14 日內檢附單據報支。",
    "抱歉,目前的知識庫中沒有這個問題的相關資訊,請洽詢人資部門。",
    "依據公司規範:密碼長度至少 12 碼,每 90 天更換一次。",
    "The VPN must be used with MFA; 請先安裝 GlobalProtect 客戶端。",
    "加班需事先申請,主管核准後方可加班 (overtime pre-approval required)。",
]

FIXED = [
    ("", ""),
    ("", "a"),
    ("a", ""),
    ("", "公司"),
    ("abc", "abc"),
    ("abc", "xyz"),
    ("abcd", "bcde"),
    (" abcd", "abcd abcd"),
    ("abxcd", "abcd"),
    ("private Thread currentThread;", "private volatile Thread currentThread;"),
    ("公司規範", "公司規定"),
    ("依據公司規範:請假", "依據公司規範:請假"),
    ("請假流程", "流程請假"),
    ("VPN 可以在國外用嗎", "VPN 連線規定"),
    ("😀😃😄", "😀😄"),
    ("👩‍💻 工程師", "👩‍💻工程師"),
    ("café", "cafe\u0301"),
    ("ＡＢＣ全形", "ABC全形"),
    ("a\tb\nc", "a b c"),
    ("aaaa", "aa"),
    ("abab", "baba"),
]


def random_string(rng, alphabet, lo, hi):
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))


def mutate(rng, s, alphabet, edits):
    chars = list(s)
    for _ in range(edits):
        op = rng.randrange(3)
        pos = rng.randint(0, len(chars))
        if op == 0:
            chars.insert(pos, rng.choice(alphabet))
        elif chars and op == 1:
            del chars[min(pos, len(chars) - 1)]
        elif chars:
            chars[min(pos, len(chars) - 1)] = rng.choice(alphabet)
    return "".join(chars)


def pairs():
    rng = random.Random(SEED)
    out = list(FIXED)
    cjk = "公司規範員工請假出差費用報支密碼更換加班申請主管核准資訊部門網路連線安全"
    mixed = cjk + "VPNMFAabc 0123:,。!?"
    emoji = "😀😃😄😁🚀🔥✨👍🏻🇹🇼" + cjk[:8]

    # Every ordered pair of KB-like answers (the real use), plus identical ones.
    for a in KB_LIKE:
        for b in KB_LIKE:
            out.append((a, b))

    # Edited KB-like answers: what a model produces.
    for _ in range(60):
        a = rng.choice(KB_LIKE)
        out.append((mutate(rng, a, mixed, rng.randint(1, 15)), a))

    # Random strings from small alphabets: many equal-length ties.
    for alphabet in ("ab", "abc", "公司規", "a😀", "aAbB "):
        for _ in range(20):
            out.append(
                (random_string(rng, alphabet, 0, 30), random_string(rng, alphabet, 0, 30))
            )

    for _ in range(20):
        out.append((random_string(rng, cjk, 0, 60), random_string(rng, cjk, 0, 60)))
    for _ in range(20):
        out.append((random_string(rng, emoji, 0, 40), random_string(rng, emoji, 0, 40)))
    for _ in range(10):
        out.append((random_string(rng, "abc", 5, 20), random_string(rng, "xyz", 5, 20)))

    # Long strings: b of 200+ / 1000+ items with repeated chars, so autojunk marks some popular.
    for n in (199, 200, 201, 250, 300, 600, 1000, 1200):
        for alphabet in ("ab", "abcde", cjk[:10], mixed):
            b = random_string(rng, alphabet, n, n)
            a = mutate(rng, b, alphabet, rng.randint(1, max(2, n // 10)))
            out.append((a, b))
            out.append((b, a))
    # Repetitive text around 200 items, both sides of the threshold, and short a vs long b.
    for n in (198, 199, 200, 201, 202, 300, 1001):
        b = ("依據公司規範:" * (n // 7 + 1))[:n]
        out.append((b[: n // 2], b))
        out.append((b, b[: n // 2]))
        out.append(("a" * 10, "a" * n))
        out.append(("b" + "a" * 10, "a" * n))
        out.append((b, b))
    return out


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "crates", "seqmatch", "tests", "golden.json"
    )
    records = [
        {"a": a, "b": b, "ratio": difflib.SequenceMatcher(None, a, b).ratio()} for a, b in pairs()
    ]
    doc = {
        "generator": "scripts/gen-difflib-golden.py",
        "python": sys.version.split()[0],
        "seed": SEED,
        "pairs": records,
    }
    # Atomic write: temp file in the same directory, then rename.
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"wrote {len(records)} pairs to {path}")


if __name__ == "__main__":
    main()
