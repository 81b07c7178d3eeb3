use super::*;

use proptest::prelude::*;

/// Parses `patch`, which must touch exactly one file, and applies it.
fn apply_one(patch: &str, current: Option<&str>) -> Result<Option<String>, PatchError> {
    let files = parse(patch)?;
    assert_eq!(files.len(), 1, "expected one file in {patch:?}");
    files[0]
        .apply(current.map(str::as_bytes))
        .map(|out| out.map(|b| String::from_utf8(b).expect("output is UTF-8")))
}

fn file_by_path<'a>(files: &'a [FilePatch], path: &str) -> &'a FilePatch {
    files
        .iter()
        .find(|f| f.path() == path)
        .unwrap_or_else(|| panic!("{path} not in patch"))
}

const APP_OLD: &str = "import os\n\ndef main():\n    print('hi')\n    return 0\n\nif __name__ == '__main__':\n    main()\n";

#[test]
fn multi_file_add_modify_delete() {
    let patch = "\
--- /dev/null
+++ b/src/new.txt
@@ -0,0 +1,2 @@
+hello
+world
--- a/src/app.py
+++ b/src/app.py
@@ -1,5 +1,5 @@
 import os
 
 def main():
-    print('hi')
+    print('hello')
     return 0
--- a/old.txt
+++ /dev/null
@@ -1,2 +0,0 @@
-one
-two
";
    let files = parse(patch).unwrap();
    assert_eq!(files.len(), 3);

    let add = file_by_path(&files, "src/new.txt");
    assert_eq!(add.change(), Change::Add);
    assert_eq!(add.old_path, None);
    assert_eq!(add.apply(None).unwrap().unwrap(), b"hello\nworld\n");

    let modify = file_by_path(&files, "src/app.py");
    assert_eq!(modify.change(), Change::Modify);
    assert_eq!(modify.old_path.as_deref(), Some("src/app.py"));
    let out = modify.apply(Some(APP_OLD.as_bytes())).unwrap().unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        APP_OLD.replace("print('hi')", "print('hello')")
    );

    let delete = file_by_path(&files, "old.txt");
    assert_eq!(delete.change(), Change::Delete);
    assert_eq!(delete.new_path, None);
    assert_eq!(delete.apply(Some(b"one\ntwo\n")).unwrap(), None);
}

#[test]
fn git_style_patch() {
    let patch = "\
diff --git a/README.md b/README.md
index 3b18e51..a042389 100644
--- a/README.md
+++ b/README.md
@@ -1,3 +1,4 @@ # Title
 # Title
+
 Some text.
 More text.
diff --git a/gone.txt b/gone.txt
deleted file mode 100644
index 257cc56..0000000
--- a/gone.txt
+++ /dev/null
@@ -1 +0,0 @@
-foo
diff --git a/dir/added.rs b/dir/added.rs
new file mode 100644
index 0000000..e69de29
--- /dev/null
+++ b/dir/added.rs
@@ -0,0 +1 @@
+fn main() {}
diff --git a/empty.txt b/empty.txt
new file mode 100644
index 0000000..e69de29
diff --git a/was-empty.txt b/was-empty.txt
deleted file mode 100644
index e69de29..0000000
";
    let files = parse(patch).unwrap();
    assert_eq!(
        files.iter().map(FilePatch::path).collect::<Vec<_>>(),
        [
            "README.md",
            "gone.txt",
            "dir/added.rs",
            "empty.txt",
            "was-empty.txt"
        ]
    );
    let readme = &files[0];
    assert_eq!(readme.hunks[0].section, "# Title");
    assert_eq!(
        readme
            .apply(Some(b"# Title\nSome text.\nMore text.\n"))
            .unwrap()
            .unwrap(),
        b"# Title\n\nSome text.\nMore text.\n"
    );
    assert_eq!(files[1].apply(Some(b"foo\n")).unwrap(), None);
    assert_eq!(files[2].apply(None).unwrap().unwrap(), b"fn main() {}\n");
    // git writes no `---`/`+++` lines for an empty file.
    assert_eq!(files[3].change(), Change::Add);
    assert!(files[3].hunks.is_empty());
    assert_eq!(files[3].apply(None).unwrap().unwrap(), b"");
    assert_eq!(files[4].change(), Change::Delete);
    assert_eq!(files[4].apply(Some(b"")).unwrap(), None);
    assert!(matches!(
        files[4].apply(Some(b"x\n")),
        Err(PatchError::DeleteLeftover { lines: 1, .. })
    ));
}

#[test]
fn gnu_timestamps_and_prefixless_paths() {
    let patch = "\
--- src/lib.rs\t2024-01-01 10:00:00.000000000 +0000
+++ src/lib.rs\t2024-01-02 10:00:00.000000000 +0000
@@ -1 +1 @@
-a
+b
";
    let files = parse(patch).unwrap();
    assert_eq!(files[0].path(), "src/lib.rs");
    assert_eq!(files[0].apply(Some(b"a\n")).unwrap().unwrap(), b"b\n");
}

#[test]
fn text_around_the_diff_is_skipped() {
    let patch = "\
From 1234 Mon Sep 17 00:00:00 2001
Subject: [PATCH] change

 - a bullet in the message
---
 x.txt | 2 +-

diff --git a/x.txt b/x.txt
index 1..2 100644
--- a/x.txt
+++ b/x.txt
@@ -1 +1 @@
-a
+b
-- 
2.43.0

";
    assert_eq!(apply_one(patch, Some("a\n")).unwrap().unwrap(), "b\n");
}

#[test]
fn hunk_count_mismatch_is_an_error_naming_file_and_hunk() {
    // Too few body lines for the counts.
    let short = "\
--- a/f.txt
+++ b/f.txt
@@ -1,2 +1,2 @@
 a
-b
+c
@@ -10,3 +10,3 @@
 x
-y
+z
";
    match parse(short) {
        Err(PatchError::BadHunk { path, hunk, reason }) => {
            assert_eq!(path, "f.txt");
            assert_eq!(hunk, 2);
            assert!(reason.contains("3 old and 3 new"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
    // More body lines than the counts: must not be silently dropped.
    let long = "\
--- a/f.txt
+++ b/f.txt
@@ -1,2 +1,2 @@
 a
-b
+c
+d
";
    let err = parse(long).unwrap_err();
    assert!(
        matches!(&err, PatchError::BadHunk { path, hunk: 1, .. } if path == "f.txt"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("hunk 1 of f.txt"), "{msg}");
    // Missing removals.
    let err = parse("--- a/f\n+++ b/f\n@@ -1,3 +1 @@\n-a\n+b\n").unwrap_err();
    assert!(
        matches!(err, PatchError::BadHunk { hunk: 1, .. }),
        "{err:?}"
    );
    // An omitted count means 1.
    let files = parse("--- a/f\n+++ b/f\n@@ -2 +2,2 @@\n-a\n+b\n+c\n").unwrap();
    let h = &files[0].hunks[0];
    assert_eq!(
        (h.old_start, h.old_count, h.new_start, h.new_count),
        (2, 1, 2, 2)
    );
}

#[test]
fn context_mismatch_names_file_hunk_and_line() {
    let patch = "\
--- a/src/app.py
+++ b/src/app.py
@@ -1,3 +1,3 @@
-import os
+import sys
 
 def main():
@@ -5,4 +5,4 @@
     return 0
 
-if __name__ == '__main__':
+if __name__ == \"__main__\":
     main()
";
    let current = APP_OLD.replace("    main()\n", "    run()\n");
    let err = apply_one(patch, Some(&current)).unwrap_err();
    assert_eq!(
        err,
        PatchError::HunkMismatch {
            path: "src/app.py".into(),
            hunk: 2,
            line: 5
        }
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "hunk 2 of src/app.py does not apply: the lines at line 5 differ from the patch's context; \
             the file has changed since the patch was made"
        ),
        "{msg}"
    );
    // Unchanged file: applies.
    let out = apply_one(patch, Some(APP_OLD)).unwrap().unwrap();
    assert!(out.starts_with("import sys\n"));
    assert!(out.contains("if __name__ == \"__main__\":\n    main()\n"));
}

#[test]
fn whitespace_differences_do_not_match() {
    let patch = "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n d\n";
    assert!(apply_one(patch, Some("a\nb \nd\n")).is_err());
    assert!(apply_one(patch, Some("a\n\tb\nd\n")).is_err());
    assert_eq!(
        apply_one(patch, Some("a\nb\nd\n")).unwrap().unwrap(),
        "a\nc\nd\n"
    );
}

fn numbered(range: std::ops::Range<usize>) -> String {
    range.map(|i| format!("line {i}\n")).collect()
}

#[test]
fn hunks_found_at_an_offset() {
    let old = numbered(1..41);
    let mut new = old.replace("line 10\n", "line ten\n");
    new = new.replace("line 30\n", "line thirty\n");
    let patch = unified_diff("f.txt", Some(&old), Some(&new), 3);
    assert_eq!(parse(&patch).unwrap()[0].hunks.len(), 2);

    // Five lines added at the top since: both hunks move down by 5.
    let shifted = format!("{}{old}", numbered(100..105));
    let out = apply_one(&patch, Some(&shifted)).unwrap().unwrap();
    assert_eq!(out, format!("{}{new}", numbered(100..105)));

    // Lines removed above: the hunks move up.
    let shrunk = old.replace("line 2\nline 3\n", "");
    let expected = new.replace("line 2\nline 3\n", "");
    assert_eq!(apply_one(&patch, Some(&shrunk)).unwrap().unwrap(), expected);

    // Lines added between the hunks: only the second moves.
    let between = old.replace("line 20\n", "line 20\nextra\nextra\n");
    let expected = new.replace("line 20\n", "line 20\nextra\nextra\n");
    assert_eq!(
        apply_one(&patch, Some(&between)).unwrap().unwrap(),
        expected
    );
}

#[test]
fn hunk_at_start_of_file_does_not_move() {
    let old = numbered(1..10);
    let new = old.replace("line 2\n", "line two\n");
    let patch = unified_diff("f", Some(&old), Some(&new), 3);
    assert!(patch.contains("@@ -1,5 +1,5 @@"), "{patch}");
    let shifted = format!("header\n{old}");
    assert_eq!(
        apply_one(&patch, Some(&shifted)).unwrap_err(),
        PatchError::HunkMismatch {
            path: "f".into(),
            hunk: 1,
            line: 1
        }
    );
}

#[test]
fn hunk_at_end_of_file_does_not_move() {
    let old = numbered(1..10);
    let new = old.replace("line 9\n", "line nine\n");
    let patch = unified_diff("f", Some(&old), Some(&new), 3);
    // The file has grown at the end since: the change no longer ends it.
    let grown = format!("{old}line 10\n");
    assert!(matches!(
        apply_one(&patch, Some(&grown)),
        Err(PatchError::HunkMismatch { hunk: 1, .. })
    ));
}

#[test]
fn hunks_may_not_overlap_or_go_backwards() {
    let patch = "\
--- a/f
+++ b/f
@@ -5,3 +5,3 @@
 a
-b
+c
 d
@@ -6,2 +6,2 @@
-b
+c
 d
";
    let err = parse(patch).unwrap_err();
    assert!(
        matches!(err, PatchError::BadHunk { hunk: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn no_newline_at_end_of_file_both_directions() {
    // Adding the final newline.
    let patch = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n";
    let files = parse(patch).unwrap();
    assert!(files[0].old_missing_newline);
    assert!(!files[0].new_missing_newline);
    assert_eq!(apply_one(patch, Some("a\nb")).unwrap().unwrap(), "a\nb\n");
    // The file already ends with a newline: that is a mismatch.
    assert!(matches!(
        apply_one(patch, Some("a\nb\n")),
        Err(PatchError::HunkMismatch { .. })
    ));

    // Removing the final newline.
    let patch = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n+b\n\\ No newline at end of file\n";
    let files = parse(patch).unwrap();
    assert!(!files[0].old_missing_newline);
    assert!(files[0].new_missing_newline);
    assert_eq!(apply_one(patch, Some("a\nb\n")).unwrap().unwrap(), "a\nb");
    assert!(apply_one(patch, Some("a\nb")).is_err());

    // Neither side has one: the marker follows a context line.
    let patch = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n-a\n+A\n b\n\\ No newline at end of file\n";
    let files = parse(patch).unwrap();
    assert!(files[0].old_missing_newline && files[0].new_missing_newline);
    assert_eq!(apply_one(patch, Some("a\nb")).unwrap().unwrap(), "A\nb");

    // Both sides changed, neither with a newline.
    let patch = "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-x\n\\ No newline at end of file\n+y\n\\ No newline at end of file\n";
    assert_eq!(apply_one(patch, Some("x")).unwrap().unwrap(), "y");

    // Generated diffs agree.
    let diff = unified_diff("f", Some("a\nb"), Some("a\nb\n"), 3);
    assert_eq!(
        diff,
        "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n"
    );
    assert_eq!(
        unified_diff("f", None, Some("x"), 3),
        "--- /dev/null\n+++ b/f\n@@ -0,0 +1 @@\n+x\n\\ No newline at end of file\n"
    );
}

#[test]
fn misplaced_no_newline_markers_are_errors() {
    // A line of the old side after the old side's marker.
    let err =
        parse("--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n-a\n\\ No newline at end of file\n-b\n+c\n+d\n")
            .unwrap_err();
    assert!(
        matches!(err, PatchError::BadHunk { hunk: 1, .. }),
        "{err:?}"
    );
    // A hunk after the marker.
    let err = parse(
        "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n\\ No newline at end of file\n@@ -5 +5 @@\n-c\n+d\n",
    )
    .unwrap_err();
    assert!(
        matches!(err, PatchError::BadHunk { hunk: 2, .. }),
        "{err:?}"
    );
    // Two markers in a row.
    let err =
        parse("--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n\\ No newline\n\\ No newline\n").unwrap_err();
    assert!(
        matches!(err, PatchError::BadHunk { hunk: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn crlf_lines_are_preserved() {
    let old = "one\r\ntwo\r\nthree\r\n";
    let new = "one\r\n2\r\nthree\r\n";
    let patch = unified_diff("win.txt", Some(old), Some(new), 3);
    assert!(patch.contains("-two\r\n+2\r\n"), "{patch:?}");
    assert_eq!(apply_one(&patch, Some(old)).unwrap().unwrap(), new);
    // The same patch does not match a file with plain `\n` endings.
    assert!(apply_one(&patch, Some("one\ntwo\nthree\n")).is_err());
    // A patch saved with CRLF endings throughout: headers still parse, and
    // the body's `\r` belongs to the lines.
    let crlf_patch = "--- a/f\r\n+++ b/f\r\n@@ -1,2 +1,2 @@\r\n a\r\n-b\r\n+c\r\n";
    assert_eq!(
        apply_one(crlf_patch, Some("a\r\nb\r\n")).unwrap().unwrap(),
        "a\r\nc\r\n"
    );
}

#[test]
fn unsupported_git_features_are_refused() {
    let cases = [
        (
            "diff --git a/x b/y\nsimilarity index 100%\nrename from x\nrename to y\n",
            "renames or copies",
        ),
        (
            "diff --git a/x b/y\nrename from x\nrename to y\n",
            "renames a file",
        ),
        ("diff --git a/x b/y\ncopy from x\ncopy to y\n", "copies a file"),
        (
            "diff --git a/x b/x\nold mode 100644\nnew mode 100755\n",
            "changes a file mode",
        ),
        (
            "diff --git a/x b/x\nindex 1..2\nBinary files a/x and b/x differ\n",
            "binary",
        ),
        (
            "diff --git a/x b/x\nindex 1..2\nGIT binary patch\nliteral 4\nLcmZ?\n",
            "binary",
        ),
        ("Binary files a/img.png and b/img.png differ\n", "binary"),
        (
            "diff --git a/l b/l\nnew file mode 120000\nindex 0..1\n--- /dev/null\n+++ b/l\n@@ -0,0 +1 @@\n+target\n",
            "symlink",
        ),
        (
            "diff --git a/x b/x\nnew file mode 100755\nindex 0..1\n--- /dev/null\n+++ b/x\n@@ -0,0 +1 @@\n+x\n",
            "executable",
        ),
        (
            "diff --git a/x b/x\ndissimilarity index 90%\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n",
            "dissimilarity",
        ),
    ];
    for (patch, what_contains) in cases {
        match parse(patch) {
            Err(err @ PatchError::Unsupported { .. }) => {
                let msg = err.to_string();
                assert!(msg.contains(what_contains), "{msg}");
            }
            other => panic!("{patch:?} gave {other:?}"),
        }
    }
    let err = parse("diff --git a/img.png b/img.png\nindex 1..2 100644\nBinary files a/img.png and b/img.png differ\n")
        .unwrap_err();
    assert_eq!(
        err,
        PatchError::Unsupported {
            path: "img.png".into(),
            what: "changes a binary file".into()
        }
    );
}

#[test]
fn duplicate_paths_are_refused() {
    let patch = "\
--- a/f
+++ b/f
@@ -1 +1 @@
-a
+b
--- a/f
+++ b/f
@@ -3 +3 @@
-c
+d
";
    assert_eq!(
        parse(patch).unwrap_err(),
        PatchError::DuplicatePath { path: "f".into() }
    );
}

#[test]
fn delete_must_remove_everything() {
    let patch = "--- a/f\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-a\n-b\n";
    let err = apply_one(patch, Some("a\nb\nc\nd\n")).unwrap_err();
    assert_eq!(
        err,
        PatchError::DeleteLeftover {
            path: "f".into(),
            lines: 2
        }
    );
    assert!(err.to_string().contains("f"));
    assert_eq!(apply_one(patch, Some("a\nb\n")).unwrap(), None);
}

#[test]
fn file_existence_and_text_checks() {
    let add = "--- /dev/null\n+++ b/f\n@@ -0,0 +1 @@\n+x\n";
    assert_eq!(
        apply_one(add, Some("")).unwrap_err(),
        PatchError::AlreadyExists { path: "f".into() }
    );
    let modify = "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n";
    assert_eq!(
        apply_one(modify, None).unwrap_err(),
        PatchError::Missing { path: "f".into() }
    );
    let delete = "--- a/f\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n";
    assert_eq!(
        apply_one(delete, None).unwrap_err(),
        PatchError::Missing { path: "f".into() }
    );
    let files = parse(modify).unwrap();
    assert_eq!(
        files[0].apply(Some(b"a\xff\n")).unwrap_err(),
        PatchError::NotText { path: "f".into() }
    );
}

#[test]
fn bad_paths_are_refused() {
    let modify = |old: &str, new: &str| format!("--- {old}\n+++ {new}\n@@ -1 +1 @@\n-a\n+b\n");
    for (patch, reason) in [
        (modify("a//etc/passwd", "b//etc/passwd"), "it is absolute"),
        (modify("a/../x", "b/../x"), "it contains a `..` component"),
        (
            modify("a/src/../../x", "b/src/../../x"),
            "it contains a `..` component",
        ),
        (modify("a/", "b/"), "it is empty"),
        // The old side of a modify is checked too.
        (modify("a/../x", "b/x"), "it contains a `..` component"),
        (
            "--- /dev/null\n+++ b/dir/\n@@ -0,0 +1 @@\n+b\n".to_string(),
            "it names a directory, not a file",
        ),
        (
            "diff --git a/../x b/../x\nnew file mode 100644\nindex 0..e69de29\n".to_string(),
            "it contains a `..` component",
        ),
    ] {
        match parse(&patch) {
            Err(PatchError::BadPath { reason: got, .. }) => assert_eq!(got, reason, "{patch:?}"),
            other => panic!("{patch:?} gave {other:?}"),
        }
    }
    // `..` inside a name is fine.
    assert!(parse(&modify("a/x..y", "b/x..y")).is_ok());
}

#[test]
fn empty_oversized_and_fileless_patches() {
    assert_eq!(parse("").unwrap_err(), PatchError::Empty);
    assert_eq!(parse(" \n\n").unwrap_err(), PatchError::Empty);
    let big = "x".repeat(MAX_PATCH_BYTES + 1);
    assert!(matches!(parse(&big), Err(PatchError::TooLarge { .. })));
    assert_eq!(parse("just some text\n").unwrap_err(), PatchError::NoFiles);
    assert!(matches!(
        parse("@@ -1 +1 @@\n-a\n+b\n"),
        Err(PatchError::Malformed { line: 1, .. })
    ));
    assert!(matches!(
        parse("--- a/f\n+++ b/f\n"),
        Err(PatchError::Malformed { line: 1, .. })
    ));
    assert!(matches!(
        parse("--- a/f\n+++ b/f\n@@ -1,x +1 @@\n-a\n+b\n"),
        Err(PatchError::BadHunk { hunk: 1, .. })
    ));
    assert!(matches!(
        parse("--- /dev/null\n+++ /dev/null\n@@ -0,0 +1 @@\n+a\n"),
        Err(PatchError::Malformed { .. })
    ));
}

#[test]
fn add_and_delete_hunks_must_match_their_kind() {
    let err = parse("--- /dev/null\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n").unwrap_err();
    assert!(
        matches!(err, PatchError::BadHunk { hunk: 1, .. }),
        "{err:?}"
    );
    let err = parse("--- a/f\n+++ /dev/null\n@@ -1 +1 @@\n-a\n+b\n").unwrap_err();
    assert!(
        matches!(err, PatchError::BadHunk { hunk: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn blank_context_lines_are_accepted() {
    // Some editors strip the lone space of an empty context line.
    let patch = "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n\n-b\n+c\n";
    assert_eq!(
        apply_one(patch, Some("a\n\nb\n")).unwrap().unwrap(),
        "a\n\nc\n"
    );
}

#[test]
fn unified_diff_output() {
    assert_eq!(unified_diff("f", Some("same\n"), Some("same\n"), 3), "");
    assert_eq!(unified_diff("f", None, None, 3), "");
    let old = numbered(1..20);
    let new = old.replace("line 10\n", "line ten\n");
    assert_eq!(
        unified_diff("dir/f.txt", Some(&old), Some(&new), 3),
        "--- a/dir/f.txt\n+++ b/dir/f.txt\n@@ -7,7 +7,7 @@\n line 7\n line 8\n line 9\n-line 10\n+line ten\n line 11\n line 12\n line 13\n"
    );
    assert_eq!(
        unified_diff("dir/f.txt", Some(&old), Some(&new), 0),
        "--- a/dir/f.txt\n+++ b/dir/f.txt\n@@ -10 +10 @@\n-line 10\n+line ten\n"
    );
    assert_eq!(
        unified_diff("f", Some("a\nb\n"), None, 3),
        "--- a/f\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-a\n-b\n"
    );
    assert_eq!(
        unified_diff("f", None, Some(""), 3),
        "--- /dev/null\n+++ b/f\n"
    );
    // Pure insertion with no context names the line before it.
    assert_eq!(
        unified_diff("f", Some("a\nb\n"), Some("a\nx\nb\n"), 0),
        "--- a/f\n+++ b/f\n@@ -1,0 +2 @@\n+x\n"
    );
    // Huge context does not overflow.
    assert!(unified_diff("f", Some("a\n"), Some("b\n"), usize::MAX).contains("@@ -1 +1 @@"));
}

#[test]
fn unusual_paths_round_trip() {
    for path in [
        "with space.txt",
        "tab\there",
        "quote\"d",
        "back\\slash",
        "caf\u{e9}.txt",
    ] {
        let patch = unified_diff(path, Some("a\n"), Some("b\n"), 3);
        let files = parse(&patch).unwrap();
        assert_eq!(files[0].path(), path, "{patch:?}");
    }
    // git's octal quoting of non-ASCII names.
    let files =
        parse("--- \"a/caf\\303\\251\"\n+++ \"b/caf\\303\\251\"\n@@ -1 +1 @@\n-a\n+b\n").unwrap();
    assert_eq!(files[0].path(), "caf\u{e9}");
    // A header-only git block with a quoted name.
    let files =
        parse("diff --git \"a/x\\ty\" \"b/x\\ty\"\nnew file mode 100644\nindex 0..e69de29\n")
            .unwrap();
    assert_eq!(files[0].path(), "x\ty");
    let files = parse("diff --git a/x y b/x y\nnew file mode 100644\nindex 0..e69de29\n").unwrap();
    assert_eq!(files[0].path(), "x y");
}

/// Lines drawn from a small set so that diffs have repeats to get wrong.
fn text() -> impl Strategy<Value = String> {
    let line = prop::sample::select(vec![
        "a", "b", "c", "d", "", " x", "a\r", "\t", "-", "+", "\\",
    ]);
    (prop::collection::vec(line, 0..30), any::<bool>()).prop_map(|(lines, final_newline)| {
        let mut text = lines.join("\n");
        if final_newline && !text.is_empty() {
            text.push('\n');
        }
        text
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn diff_then_apply_round_trips(
        old in prop::option::weighted(0.85, text()),
        new in prop::option::weighted(0.85, text()),
        context in prop::sample::select(vec![0usize, 1, 3, 3, 3, 5]),
    ) {
        let patch = unified_diff("dir/file.txt", old.as_deref(), new.as_deref(), context);
        if old == new {
            prop_assert_eq!(patch, "");
        } else {
            let files = parse(&patch).map_err(|e| TestCaseError::fail(format!("{e}\n{patch}")))?;
            prop_assert_eq!(files.len(), 1);
            prop_assert_eq!(files[0].path(), "dir/file.txt");
            let out = files[0]
                .apply(old.as_deref().map(str::as_bytes))
                .map_err(|e| TestCaseError::fail(format!("{e}\n{patch}")))?;
            prop_assert_eq!(out, new.map(String::into_bytes), "patch:\n{}", patch);
        }
    }

    #[test]
    fn parse_never_panics_on_any_string(text in any::<String>()) {
        let _ = parse(&text);
    }

    #[test]
    fn parse_and_apply_never_panic_on_diff_like_text(
        lines in prop::collection::vec(prop::sample::select(vec![
            "--- a/f", "+++ b/f", "--- /dev/null", "+++ /dev/null", "--- \"a/\\", "+++ \"b/x\\303",
            "@@ -1 +1 @@", "@@ -0,0 +1,2 @@", "@@ -1,2 +0,0 @@", "@@ -2,3 +2,2 @@ sec", "@@ -99999999999999999999 +1 @@",
            "@@ -1,18446744073709551615 +1 @@", " a", "-a", "+b", " ", "", "\\ No newline at end of file",
            "diff --git a/f b/f", "new file mode 100644", "deleted file mode 100644", "index 1..2 100644",
            "-- ", "\r", " a\r", "diff -u a b", "Binary files", "--- ", "+++ ",
        ]), 0..40),
        content in prop::option::of(prop::collection::vec(prop::sample::select(vec![
            "a\n", "b\n", "a", "\n", "c\r\n",
        ]), 0..8)),
    ) {
        let text = lines.join("\n");
        if let Ok(files) = parse(&text) {
            let content = content.map(|c| c.concat());
            for file in files {
                let _ = file.apply(content.as_deref().map(str::as_bytes));
            }
        }
    }

    #[test]
    fn apply_never_panics_on_hand_built_patches(
        old_start in 0usize..6, old_count in 0usize..6, new_start in 0usize..6, new_count in 0usize..6,
        kinds in prop::collection::vec((0u8..3, prop::sample::select(vec!["a", "b", ""])), 0..6),
        missing in any::<(bool, bool)>(),
        paths in prop::sample::select(vec![(Some("f"), Some("f")), (None, Some("f")), (Some("f"), None), (None, None)]),
        content in prop::option::of(prop::sample::select(vec!["", "a\n", "a\nb\n", "b", "a\na\na\n"])),
    ) {
        let lines = kinds.into_iter().map(|(k, t)| match k {
            0 => Line::Context(t.into()),
            1 => Line::Remove(t.into()),
            _ => Line::Add(t.into()),
        }).collect();
        let file = FilePatch {
            old_path: paths.0.map(String::from),
            new_path: paths.1.map(String::from),
            hunks: vec![Hunk { old_start, old_count, new_start, new_count, section: String::new(), lines }],
            old_missing_newline: missing.0,
            new_missing_newline: missing.1,
        };
        let _ = file.apply(content.map(str::as_bytes));
    }
}
