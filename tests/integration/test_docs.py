# SPDX-License-Identifier: MIT
"""The documentation against the binary: every directive `tether -D` lists has an
entry in tether.conf(5) in the section of its context, with its usage and its
default, and a line in conf/tether.conf in the right block (with the default
when there is one); conf/tether.conf and conf/demo.conf pass `tether -t`; the
man pages render without groff warnings."""
import os
import re
import shutil
import subprocess
import tempfile

import harness as h

MAN5 = os.path.join(h.SRCDIR, "doc", "tether.conf.5")
REFCONF = os.path.join(h.SRCDIR, "conf", "tether.conf")
DEMOCONF = os.path.join(h.SRCDIR, "conf", "demo.conf")

# The tether.conf(5) section (".SS" title) that documents each context.
SECTIONS = {
    "any": "Includes",
    "main": "Main context",
    "stats": "stats block",
    "admin": "admin block",
    "redis": "redis block",
    "affinity": "affinity block",
    "upstream": "upstream block",
    "health_check": "health_check block",
    "outlier": "outlier block",
    "server": "server block",
    "route": "route block",
}


def directives():
    """(context, name, default or None, usage) for every directive of tether -D."""
    p = subprocess.run([h.TETHER, "-D"], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    out = []
    for line in p.stdout.splitlines():
        ctx, name, dflt, usage = line.split("\t")
        out.append((ctx, name, None if dflt == "-" else dflt, usage))
    assert len(out) > 50, p.stdout
    return out


# ---- a small reader for the roff the man pages use ----

def unescape(s):
    """Roff text to plain text: fonts dropped, the escapes used here resolved."""
    s = re.sub(r"\\f(\[[^\]]*\]|\(..|.)", "", s)
    for a, b in (("\\-", "-"), ("\\&", ""), ("\\(mu", "x"), ("\\(aq", "'"),
                 ("\\(dq", '"'), ("\\(em", "--"), ("\\ ", " "), ("\\e", "\\")):
        s = s.replace(a, b)
    return s


def macro_text(line):
    """The text a font macro line (.B, .BR, ...) prints; '' for other requests."""
    m = re.match(r"\.([A-Z]{1,2})\s*(.*)$", line)
    if not m or m.group(1) not in ("B", "I", "BR", "RB", "BI", "IB", "IR", "RI"):
        return ""
    args = [a if a is not None and a != "" else b
            for a, b in re.findall(r'"((?:[^"]|"")*)"|(\S+)', m.group(2))]
    args = [a.replace('""', '"') for a in args]
    sep = " " if m.group(1) in ("B", "I") else ""
    return unescape(sep.join(args))


def plain_line(line):
    if line.startswith(".") or line.startswith("'"):
        return macro_text(line)
    return unescape(line)


def norm(s):
    return " ".join(s.split())


def man_entries(path):
    """{section title: {directive name: (tag, text)}} for the .TP entries at the
    top level of every .SS section (entries nested in .RS/.RE belong to the
    entry around them)."""
    with open(path) as f:
        lines = f.read().splitlines()
    sections = {}
    cur = None      # entries of the current section
    entry = None    # [tag, [text lines]] being read
    depth = 0       # .RS nesting
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(".SS") or line.startswith(".SH"):
            title = macro_text(".B " + line[3:].strip()) if line.startswith(".SS") else None
            cur = sections.setdefault(title, {}) if title else None
            entry, depth = None, 0
        elif line.startswith(".RS"):
            depth += 1
        elif line.startswith(".RE"):
            depth = max(0, depth - 1)
        elif line.startswith(".TP") and depth == 0 and cur is not None and i + 1 < len(lines):
            tag = norm(plain_line(lines[i + 1]))
            name = tag.split(" ")[0] if tag else ""
            entry = [tag, []]
            cur.setdefault(name, entry)
            i += 2
            continue
        elif entry is not None:
            entry[1].append(plain_line(line))
        i += 1
    return {t: {n: (e[0], norm(" ".join(e[1]))) for n, e in ents.items()}
            for t, ents in sections.items()}


# ---- the reference configuration ----

def conf_statements(path):
    """(context, statement text) for every statement line of a commented
    configuration, commented out or not; the context comes from the blocks
    (commented or not) the line sits in."""
    stack = ["main"]
    out = []
    for raw in open(path):
        body = re.sub(r"^[#\s]+", "", raw).strip()
        m = re.match(r"([a-z_][a-z0-9_]*)\b", body)
        if body == "}":
            if len(stack) > 1:
                stack.pop()
            continue
        if not m:
            continue
        if body.endswith("{"):
            out.append((stack[-1], norm(body)))
            stack.append(m.group(1))
            continue
        if body.endswith(";") or body.endswith("}"):
            out.append((stack[-1], norm(body)))
    return out


def test_every_directive_documented_in_man_page():
    secs = man_entries(MAN5)
    missing, wrong_usage, wrong_default = [], [], []
    for ctx, name, dflt, usage in directives():
        title = SECTIONS.get(ctx)
        assert title, "no tether.conf(5) section for context %r (add it to SECTIONS)" % ctx
        entry = secs.get(title, {}).get(name)
        if not entry:
            missing.append("%s: %s" % (ctx, name))
            continue
        tag, text = entry
        if tag != norm(usage):
            wrong_usage.append("%s: %s: man %r, tether -D %r" % (ctx, name, tag, usage))
        if dflt is not None and not re.search(
                r"Default:\s*" + re.escape(dflt) + r"(?=[\s.,;)]|$)", text):
            wrong_default.append("%s: %s: want \"Default: %s\" in %r" % (ctx, name, dflt, text[:120]))
    problems = ["missing from tether.conf.5: %s" % m for m in missing] + wrong_usage + wrong_default
    assert not problems, "\n".join(problems)


def test_man_page_documents_no_stale_directive():
    known = {(c, n) for c, n, _, _ in directives()}
    secs = man_entries(MAN5)
    stale = []
    for ctx, title in SECTIONS.items():
        assert title in secs, "tether.conf.5 has no section %r" % title
        for name in secs[title]:
            if (ctx, name) not in known:
                stale.append("%s: %s" % (title, name))
    assert not stale, "tether.conf.5 documents directives tether -D does not know: %s" % stale


def test_every_directive_in_reference_conf():
    stmts = conf_statements(REFCONF)
    missing, no_default = [], []
    for ctx, name, dflt, _ in directives():
        lines = [s for c, s in stmts if (c == ctx or ctx == "any")
                 and (s == name + ";" or s.startswith(name + " "))]
        if not lines:
            missing.append("%s: %s" % (ctx, name))
        elif dflt is not None and "%s %s;" % (name, dflt) not in lines:
            no_default.append("%s: \"%s %s;\"" % (ctx, name, dflt))
    assert not missing, "directives missing from conf/tether.conf (in their block): %s" % missing
    assert not no_default, "conf/tether.conf lacks the default statements: %s" % no_default


def check_ok(path):
    p = subprocess.run([h.TETHER, "-t", "-c", path], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, (path, p.returncode, p.stderr)
    assert "configuration %s ok" % path in p.stdout, p.stdout


def test_reference_conf_checks():
    check_ok(REFCONF)


def test_demo_conf_checks():
    d = tempfile.mkdtemp(prefix="tether-docs-")
    try:
        with open(os.path.join(d, "affinity.key"), "w") as f:
            f.write("0123456789abcdef0123456789abcdef\n")
        with open(DEMOCONF) as f:
            text = f.read()
        for ph in sorted(set(re.findall(r"@([A-Z_]+)@", text))):
            text = text.replace("@%s@" % ph, d if ph == "RUN" else str(h.free_port()))
        assert not re.search(r"@[A-Z_]+@", text), text
        path = os.path.join(d, "demo.conf")
        with open(path, "w") as f:
            f.write(text)
        check_ok(path)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_man_pages_render_without_warnings():
    pages = sorted(os.path.join(h.SRCDIR, "doc", n) for n in os.listdir(os.path.join(h.SRCDIR, "doc"))
                   if re.fullmatch(r"[a-z.]+\.[1-8]", n))
    assert os.path.join(h.SRCDIR, "doc", "tether.8") in pages and MAN5 in pages, pages
    groff = shutil.which("groff")
    if not groff:
        print("skip: groff is not installed; man page rendering not checked")
        return
    for page in pages:
        p = subprocess.run([groff, "-man", "-Tutf8", "-ww", page], capture_output=True,
                           timeout=60)
        assert p.returncode == 0 and p.stderr == b"", (page, p.stderr.decode(errors="replace"))
        assert len(p.stdout) > 1000, page


if __name__ == "__main__":
    h.main(globals())
