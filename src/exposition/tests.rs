//! Every rule of the parser as one `check(format, body, expect)`: the body's samples, types
//! and help texts, or its error, as text.

use expect_test::{expect, Expect};

use super::*;

const TEXT: Format = Format::Text004;
const OM: Format = Format::OpenMetrics;

fn render(result: &Result<Parsed, ParseError>) -> String {
    let parsed = match result {
        Ok(parsed) => parsed,
        Err(err) => return format!("error: {err}\n"),
    };
    let mut out = String::new();
    for s in &parsed.samples {
        out.push_str(&s.name);
        if !s.labels.is_empty() {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            out.push_str(&format!("{{{}}}", labels.join(", ")));
        }
        // `{:?}` shows -0 and NaN apart from 0; keep integers short.
        out.push_str(&format!(" {:?}", s.value));
        if let Some(ts) = s.timestamp_ms {
            out.push_str(&format!(" @{ts}"));
        }
        out.push('\n');
    }
    for (name, kind) in &parsed.types {
        out.push_str(&format!("TYPE {name} {kind}\n"));
    }
    for (name, help) in &parsed.help {
        out.push_str(&format!("HELP {name} {help:?}\n"));
    }
    out
}

fn check_with(format: Format, limits: &Limits, body: &str, expect: Expect) {
    expect.assert_eq(&render(&parse(body.as_bytes(), format, limits)));
}

fn check(format: Format, body: &str, expect: Expect) {
    check_with(format, &Limits::default(), body, expect);
}

fn check_bytes(format: Format, body: &[u8], expect: Expect) {
    expect.assert_eq(&render(&parse(body, format, &Limits::default())));
}

#[test]
fn content_type_chooses_the_format() {
    let cases = [
        ("", TEXT),
        ("text/plain; version=0.0.4; charset=utf-8", TEXT),
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            OM,
        ),
        ("Application/OpenMetrics-Text", OM),
        ("  application/openmetrics-text  ;version=0.0.1", OM),
        ("application/json", TEXT),
        (";;;", TEXT),
    ];
    for (header, format) in cases {
        assert_eq!(Format::from_content_type(header), format, "{header:?}");
    }
}

#[test]
fn error_display_names_the_line() {
    let err = parse(b"a 1\nb\n", TEXT, &Limits::default()).unwrap_err();
    assert_eq!(err.line, 2);
    assert_eq!(
        err.to_string(),
        "line 2: expected a value after metric b, got the end of the line"
    );
}

// Prometheus 2.42's own test body (promparse_test.go, TestPromParse), less the trailing NUL
// cases, which have a test of their own.
#[test]
fn text_prometheus_test_body() {
    check(
        TEXT,
        r#"# HELP go_gc_duration_seconds A summary of the GC invocation durations.
# 	TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 4.9351e-05
go_gc_duration_seconds{quantile="0.25",} 7.424100000000001e-05
go_gc_duration_seconds{quantile="0.5",a="b"} 8.3835e-05
go_gc_duration_seconds{quantile="0.8", a="b"} 8.3835e-05
go_gc_duration_seconds{ quantile="0.9", a="b"} 8.3835e-05
# Hrandom comment starting with prefix of HELP
#
wind_speed{A="2",c="3"} 12345
# comment with escaped \n newline
# comment with escaped \ escape character
# HELP nohelp1
# HELP nohelp2 
go_gc_duration_seconds{ quantile="1.0", a="b" } 8.3835e-05
go_gc_duration_seconds_count 99
some:aggregate:rate5m{a_b="c"}	1
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 33  	123123
_metric_starting_with_underscore 1
testmetric{_label_starting_with_underscore="foo"} 1
testmetric{label="\"bar\""} 1"#,
        expect![[r#"
            go_gc_duration_seconds{quantile="0"} 4.9351e-5
            go_gc_duration_seconds{quantile="0.25"} 7.424100000000001e-5
            go_gc_duration_seconds{a="b", quantile="0.5"} 8.3835e-5
            go_gc_duration_seconds{a="b", quantile="0.8"} 8.3835e-5
            go_gc_duration_seconds{a="b", quantile="0.9"} 8.3835e-5
            wind_speed{A="2", c="3"} 12345.0
            go_gc_duration_seconds{a="b", quantile="1.0"} 8.3835e-5
            go_gc_duration_seconds_count 99.0
            some:aggregate:rate5m{a_b="c"} 1.0
            go_goroutines 33.0 @123123
            _metric_starting_with_underscore 1.0
            testmetric{_label_starting_with_underscore="foo"} 1.0
            testmetric{label="\"bar\""} 1.0
            TYPE go_gc_duration_seconds summary
            TYPE go_goroutines gauge
            HELP go_gc_duration_seconds "A summary of the GC invocation durations."
            HELP go_goroutines "Number of goroutines that currently exist."
            HELP nohelp1 ""
            HELP nohelp2 ""
        "#]],
    );
}

#[test]
fn text_blanks_commas_and_spacing() {
    check(
        TEXT,
        "a { x = \"1\" , y= \"2\", } 1\n\
         b{x=\"1\" y=\"2\"} 2\n\
         \t  c 3   \n\
         d{}4\n\
         e-1 5\n\
         \n\
         \t \n\
         f{x=\"1\"}\t7\t8\t\n",
        expect![[r#"
            a{x="1", y="2"} 1.0
            b{x="1", y="2"} 2.0
            c 3.0
            d 4.0
            e -1.0 @5
            f{x="1"} 7.0 @8
        "#]],
    );
}

#[test]
fn text_label_values_keep_what_they_hold() {
    check(
        TEXT,
        r#"a{v="a,b=c}d{e"} 1
a{v="back\\slash"} 2
a{v="quote\"d"} 3
a{v="new\nline"} 4
a{v="tab\t and \x kept"} 5
a{v="ünïcödé ✓ 日本"} 6
a{v=""} 7
a{v="\\n is not a newline"} 8
a{v="ends in \\"} 9
"#,
        expect![[r#"
            a{v="a,b=c}d{e"} 1.0
            a{v="back\\slash"} 2.0
            a{v="quote\"d"} 3.0
            a{v="new\nline"} 4.0
            a{v="tab\\t and \\x kept"} 5.0
            a{v="ünïcödé ✓ 日本"} 6.0
            a{v=""} 7.0
            a{v="\\n is not a newline"} 8.0
            a{v="ends in \\"} 9.0
        "#]],
    );
}

#[test]
fn text_names() {
    check(
        TEXT,
        "job:http_requests:rate5m 1\n:leading_colon 2\n_x 3\nX9_: 4\na{_b=\"1\",B9=\"2\"} 5\n",
        expect![[r#"
            job:http_requests:rate5m 1.0
            :leading_colon 2.0
            _x 3.0
            X9_: 4.0
            a{B9="2", _b="1"} 5.0
        "#]],
    );
    check(
        TEXT,
        "9a 1\n",
        expect![[r#"
        error: line 1: expected a metric name or a comment, got "9a 1"
    "#]],
    );
    check(
        TEXT,
        "a{9b=\"1\"} 1\n",
        expect![[r#"
        error: line 1: expected a label name or '}', got "9b=\"1\"} 1"
    "#]],
    );
    check(
        TEXT,
        "a{b:c=\"1\"} 1\n",
        expect![[r#"
        error: line 1: expected '=' after label name b, got ":c=\"1\"} 1"
    "#]],
    );
    check(
        TEXT,
        "a{=\"1\"} 1\n",
        expect![[r#"
        error: line 1: expected a label name or '}', got "=\"1\"} 1"
    "#]],
    );
    check(
        TEXT,
        "{a=\"1\"} 1\n",
        expect![[r#"
        error: line 1: expected a metric name or a comment, got "{a=\"1\"} 1"
    "#]],
    );
    check(
        TEXT,
        "a{b='c'} 1\n",
        expect![[r#"
        error: line 1: expected a quoted value for label b, got "'c'} 1"
    "#]],
    );
    check(
        TEXT,
        "a{b=\"c} 1\n",
        expect![[r#"
        error: line 1: missing closing quote in the value of label b
    "#]],
    );
    check(
        TEXT,
        "a{b=\"c\\\"} 1\n",
        expect![[r#"
        error: line 1: missing closing quote in the value of label b
    "#]],
    );
    check(
        TEXT,
        "a{b=\"c\"\n",
        expect![[r#"
        error: line 1: expected a label name or '}', got the end of the line
    "#]],
    );
    check(
        TEXT,
        "a{b=\"c\",,} 1\n",
        expect![[r#"
        error: line 1: expected a label name or '}', got ",} 1"
    "#]],
    );
    check(
        TEXT,
        "a{b} 1\n",
        expect![[r#"
        error: line 1: expected '=' after label name b, got "} 1"
    "#]],
    );
    check(
        TEXT,
        "a{b=\"c\"}{d=\"e\"} 1\n",
        expect![[r#"
        error: line 1: expected a value after metric a, got "{d=\"e\"} 1"
    "#]],
    );
}

#[test]
fn values() {
    check(
        TEXT,
        "a 1\nb -2\nc +3.5\nd 1e3\ne 1E-3\nf .5\ng 5.\nh NaN\ni nan\nj +Inf\nk -Inf\nl Inf\n\
         m inf\nn Infinity\no -infinity\np 0\nq -0\nr 123456789012345678901\ns 1e-400\n\
         t 1.7976931348623157e308\nu 007\n",
        expect![[r#"
            a 1.0
            b -2.0
            c 3.5
            d 1000.0
            e 0.001
            f 0.5
            g 5.0
            h NaN
            i NaN
            j inf
            k -inf
            l inf
            m inf
            n inf
            o -inf
            p 0.0
            q -0.0
            r 1.2345678901234568e20
            s 0.0
            t 1.7976931348623157e308
            u 7.0
        "#]],
    );
    for bad in [
        "0x1p-2",
        "0x10",
        "1_000",
        "+NaN",
        "-nan",
        "1e400",
        "-1e400",
        "true",
        "1,5",
        "1e",
        ".",
        "infinit",
        "Infinityy",
        "--1",
        "1.2.3",
        "١",
    ] {
        let err = parse(format!("a {bad}\n").as_bytes(), TEXT, &Limits::default()).unwrap_err();
        assert_eq!(err.line, 1, "{bad}");
        assert!(
            err.reason.starts_with("invalid value") || err.reason.contains("out of range"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn text_timestamps() {
    check(
        TEXT,
        "a 1 0\nb 1 1700000000000\nc 1 9223372036854775807\nd 1 0001\n",
        expect![[r#"
            a 1.0 @0
            b 1.0 @1700000000000
            c 1.0 @9223372036854775807
            d 1.0 @1
        "#]],
    );
    check(
        TEXT,
        "a 1 -5\n",
        expect![[r#"
        error: line 1: expected a timestamp (integer milliseconds) or the end of the line, got "-5"
    "#]],
    );
    check(
        TEXT,
        "a 1 9223372036854775808\n",
        expect![[r#"
        error: line 1: timestamp "9223372036854775808" out of range
    "#]],
    );
    check(
        TEXT,
        "a 1 1.5\n",
        expect![[r#"
        error: line 1: expected the end of the line after the timestamp, got ".5"
    "#]],
    );
    check(
        TEXT,
        "a 1 2 3\n",
        expect![[r#"
        error: line 1: expected the end of the line after the timestamp, got "3"
    "#]],
    );
    check(
        TEXT,
        "a 1 1e3\n",
        expect![[r#"
        error: line 1: expected the end of the line after the timestamp, got "e3"
    "#]],
    );
    check(
        TEXT,
        "a 1\r\n",
        expect![[r#"
        error: line 1: invalid value "1\r"
    "#]],
    );
}

#[test]
fn text_help_and_type() {
    check(
        TEXT,
        "# HELP a Escapes: \\\\ \\n \\\" \\t kept.\n\
         # TYPE a counter\n\
         a 1\n\
         #\tHELP  b \ttwo blanks\n\
         # TYPE b gauge\n\
         # TYPE h histogram\n\
         h_bucket{le=\"0.5\"} 1\n\
         h_bucket{le=\"+Inf\"} 2\n\
         h_sum 3\n\
         h_count 2\n\
         # TYPE s summary\n\
         s{quantile=\"0.99\"} 1\n\
         # TYPE u untyped\n\
         # HELP\n\
         # HELPER a comment\n\
         #HELP a comment\n\
         # TYPE\n\
         # just a comment with \\ and \"\n",
        expect![[r#"
            a 1.0
            h_bucket{le="0.5"} 1.0
            h_bucket{le="+Inf"} 2.0
            h_sum 3.0
            h_count 2.0
            s{quantile="0.99"} 1.0
            TYPE a counter
            TYPE b gauge
            TYPE h histogram
            TYPE s summary
            TYPE u untyped
            HELP a "Escapes: \\ \n \\\" \\t kept."
            HELP b "\ttwo blanks"
        "#]],
    );
    check(
        TEXT,
        "# TYPE a gaugehistogram\n",
        expect![[r#"
        error: line 1: invalid metric type "gaugehistogram" for a (counter, gauge, histogram, summary or untyped)
    "#]],
    );
    check(
        TEXT,
        "# TYPE a unknown\n",
        expect![[r#"
        error: line 1: invalid metric type "unknown" for a (counter, gauge, histogram, summary or untyped)
    "#]],
    );
    check(
        TEXT,
        "# TYPE a counter \n",
        expect![[r#"
        error: line 1: invalid metric type "counter " for a (counter, gauge, histogram, summary or untyped)
    "#]],
    );
    check(
        TEXT,
        "# TYPE a\n",
        expect![[r#"
        error: line 1: invalid metric type "" for a (counter, gauge, histogram, summary or untyped)
    "#]],
    );
    check(
        TEXT,
        "# TYPE 1a counter\n",
        expect![[r#"
        error: line 1: expected a metric name after TYPE, got "1a counter"
    "#]],
    );
    check(
        TEXT,
        "# TYPE a-counter\n",
        expect![[r#"
        error: line 1: expected a blank after metric name a in TYPE, got "-counter"
    "#]],
    );
    check(
        TEXT,
        "# HELP \n",
        expect![[r#"
        error: line 1: expected a metric name after HELP, got the end of the line
    "#]],
    );
}

#[test]
fn metadata_given_twice_or_late() {
    check(
        TEXT,
        "# TYPE a counter\na 1\n# TYPE a counter\n",
        expect![[r#"
            error: line 3: second TYPE line for metric a (first at line 1)
        "#]],
    );
    check(
        TEXT,
        "# TYPE a counter\n\n# TYPE a gauge\na 1\n",
        expect![[r#"
            error: line 3: metric a changes TYPE from counter to gauge (first TYPE at line 1)
        "#]],
    );
    check(
        TEXT,
        "a 1\n# TYPE a gauge\n",
        expect![[r#"
        error: line 2: TYPE line for metric a after its samples (first sample a at line 1)
    "#]],
    );
    check(
        TEXT,
        "h_bucket{le=\"+Inf\"} 1\nh_count 1\n# TYPE h histogram\n",
        expect![[r#"
            error: line 3: TYPE line for metric h after its samples (first sample h_bucket at line 1)
        "#]],
    );
    // A gauge `h` is not sampled as `h_count`: that is a metric of its own.
    check(
        TEXT,
        "h_count 1\n# TYPE h gauge\nh 2\n",
        expect![[r#"
        h_count 1.0
        h 2.0
        TYPE h gauge
    "#]],
    );
    check(
        TEXT,
        "# HELP a one\n# HELP a two\n",
        expect![[r#"
            error: line 2: second HELP line for metric a (first at line 1)
        "#]],
    );
    // HELP after the samples is fine (Prometheus' expfmt takes it too).
    check(
        TEXT,
        "a 1\n# HELP a late\n",
        expect![[r#"
        a 1.0
        HELP a "late"
    "#]],
    );
}

#[test]
fn duplicate_series_and_labels() {
    check(
        TEXT,
        "a{x=\"1\",y=\"2\"} 1\na{x=\"2\",y=\"2\"} 2\nb{x=\"1\",y=\"2\"} 3\na{y=\"2\",x=\"1\"} 4\n",
        expect![[r#"
            error: line 4: duplicate series a{x="1", y="2"} (first at line 1)
        "#]],
    );
    check(
        TEXT,
        "a 1\nb 1\na 2 1000\n",
        expect![[r#"
        error: line 3: duplicate series a (first at line 1)
    "#]],
    );
    check(
        TEXT,
        "a{x=\"1\",x=\"2\"} 1\n",
        expect![[r#"
        error: line 1: duplicate label name x
    "#]],
    );
    check(
        TEXT,
        "a{__name__=\"b\"} 1\n",
        expect![[r#"
        error: line 1: label __name__ is reserved: the metric name goes before the braces
    "#]],
    );
    check(
        OM,
        "a{x=\"1\",x=\"1\"} 1\n# EOF\n",
        expect![[r#"
        error: line 1: duplicate label name x
    "#]],
    );
}

#[test]
fn invalid_utf8_names_its_line() {
    check_bytes(
        TEXT,
        b"a 1\nb{x=\"\xff\"} 1\n",
        expect![[r#"
        error: line 2: invalid UTF-8 at byte 6 of the line
    "#]],
    );
    check_bytes(
        TEXT,
        b"a 1\n\n# comment \xc3\n",
        expect![[r#"
        error: line 3: invalid UTF-8 at byte 11 of the line
    "#]],
    );
    check_bytes(
        TEXT,
        b"# HELP a \xe2\x82\n",
        expect![[r#"
        error: line 1: invalid UTF-8 at byte 10 of the line
    "#]],
    );
    check_bytes(
        OM,
        b"a 1\n# HELP a \xff\n# EOF\n",
        expect![[r#"
        error: line 2: invalid UTF-8 at byte 10 of the line
    "#]],
    );
}

#[test]
fn nul_bytes() {
    // Allowed inside label values and help text, as in Prometheus.
    check_bytes(
        TEXT,
        b"# HELP metric foo\x00bar\nnull_byte_metric{a=\"abc\x00\"} 1\n",
        expect![[r#"
            null_byte_metric{a="abc\0"} 1.0
            HELP metric "foo\0bar"
        "#]],
    );
    // Prometheus ends the body silently at a NUL starting a line; here it is an error.
    check_bytes(
        TEXT,
        b"a 1\n\x00b 2\n",
        expect![[r#"
        error: line 2: expected a metric name or a comment, got "\0b 2"
    "#]],
    );
    check_bytes(
        TEXT,
        b"a\x00{b=\"ddd\"} 1\n",
        expect![[r#"
        error: line 1: invalid value "\0"
    "#]],
    );
}

#[test]
fn text_body_edges() {
    check(TEXT, "", expect![""]);
    check(TEXT, "\n\n", expect![""]);
    check(
        TEXT,
        "a 1",
        expect![[r#"
        a 1.0
    "#]],
    );
    check(
        TEXT,
        "a",
        expect![[r#"
        error: line 1: expected a value after metric a, got the end of the line
    "#]],
    );
    check(
        TEXT,
        "a 1\n# EOF\nb 2\n",
        expect![[r#"
        a 1.0
        b 2.0
    "#]],
    );
}

#[test]
fn limits_are_errors_that_name_them() {
    let limits = Limits {
        max_samples: 2,
        max_labels: 2,
        max_label_name_len: 5,
        max_label_value_len: 5,
        max_line_len: 40,
    };
    check_with(
        TEXT,
        &limits,
        "a 1\nb 2\n",
        expect![[r#"
        a 1.0
        b 2.0
    "#]],
    );
    check_with(
        TEXT,
        &limits,
        "a 1\nb 2\nc 3\n",
        expect![[r#"
        error: line 3: sample_limit 2 exceeded
    "#]],
    );
    check_with(
        TEXT,
        &limits,
        "a{x=\"1\",y=\"2\"} 1\n",
        expect![[r#"
        a{x="1", y="2"} 1.0
    "#]],
    );
    check_with(
        TEXT,
        &limits,
        "a{x=\"1\",y=\"2\",z=\"3\"} 1\n",
        expect![[r#"
        error: line 1: label_limit 2 exceeded
    "#]],
    );
    check_with(
        TEXT,
        &limits,
        "a{abcde=\"1\"} 1\n",
        expect![[r#"
        a{abcde="1"} 1.0
    "#]],
    );
    check_with(
        TEXT,
        &limits,
        "a{abcdef=\"1\"} 1\n",
        expect![[r#"
        error: line 1: label_name_length_limit 5 exceeded by label "abcdef" (6 bytes)
    "#]],
    );
    check_with(
        TEXT,
        &limits,
        "a{x=\"12345\"} 1\n",
        expect![[r#"
        a{x="12345"} 1.0
    "#]],
    );
    check_with(
        TEXT,
        &limits,
        "a{x=\"1\\\\345\\\\\"} 1\n",
        expect![[r#"
        error: line 1: label_value_length_limit 5 exceeded by the value of label x (6 bytes)
    "#]],
    );
    check_with(
        TEXT,
        &limits,
        "a{x=\"123456\"} 1\n",
        expect![[r#"
        error: line 1: label_value_length_limit 5 exceeded by the value of label x (6 bytes)
    "#]],
    );
    check_with(
        TEXT,
        &limits,
        &format!("a 1\n# {}\n", "x".repeat(38)),
        expect![[r#"
            a 1.0
        "#]],
    );
    check_with(
        OM,
        &limits,
        &format!("a 1\n# HELP a {}\n# EOF", "x".repeat(40)),
        expect![[r#"
            error: line 2: line_length_limit 40 exceeded (49 bytes)
        "#]],
    );
}

#[test]
fn open_metrics_body() {
    check(
        OM,
        r#"# HELP go_gc_duration_seconds A summary of the GC invocation durations.
# TYPE go_gc_duration_seconds summary
# UNIT go_gc_duration_seconds seconds
go_gc_duration_seconds{quantile="0"} 4.9351e-05
go_gc_duration_seconds{quantile="0.5",a="b"} 8.3835e-05
go_gc_duration_seconds_count 99
go_gc_duration_seconds_sum 1.5
# HELP nohelp1 
# HELP help2 escape \\ \n \"
# UNIT nounit 
some:aggregate:rate5m{a_b="c"} 1
# TYPE go_goroutines gauge
go_goroutines 33 123.123
# TYPE hh histogram
hh_bucket{le="+Inf"} 1 # {} 4
# TYPE hhh histogram
hhh_bucket{le="0.5"} 0
hhh_bucket{le="+Inf"} 1 # {id="histogram-bucket-test"} 4
hhh_count 1 # {id="histogram-count-test"} 4 123
# TYPE ggh gaugehistogram
ggh_bucket{le="+Inf"} 1 # {id="gaugehistogram-bucket-test",xx="yy"} 4 123.123
ggh_gcount 1
ggh_gsum 2
# TYPE ii info
ii_info{foo="bar"} 1
# TYPE ss stateset
ss{ss="foo"} 1
ss{ss="bar"} 0
# TYPE un unknown
_metric_starting_with_underscore 1
testmetric{_label_starting_with_underscore="foo"} 1
testmetric{label="\"bar\""} 1
# TYPE foo counter
foo_total 17.0 1520879607.789 # {id="counter-test"} 5
foo_created 1520430000.123
bar_total{a="1",} 1 -1.5
baz 1 1e3
# EOF
"#,
        expect![[r#"
            go_gc_duration_seconds{quantile="0"} 4.9351e-5
            go_gc_duration_seconds{a="b", quantile="0.5"} 8.3835e-5
            go_gc_duration_seconds_count 99.0
            go_gc_duration_seconds_sum 1.5
            some:aggregate:rate5m{a_b="c"} 1.0
            go_goroutines 33.0 @123123
            hh_bucket{le="+Inf"} 1.0
            hhh_bucket{le="0.5"} 0.0
            hhh_bucket{le="+Inf"} 1.0
            hhh_count 1.0
            ggh_bucket{le="+Inf"} 1.0
            ggh_gcount 1.0
            ggh_gsum 2.0
            ii_info{foo="bar"} 1.0
            ss{ss="foo"} 1.0
            ss{ss="bar"} 0.0
            _metric_starting_with_underscore 1.0
            testmetric{_label_starting_with_underscore="foo"} 1.0
            testmetric{label="\"bar\""} 1.0
            foo_total 17.0 @1520879607789
            foo_created 1520430000.123
            bar_total{a="1"} 1.0 @-1500
            baz 1.0 @1000000
            TYPE foo counter
            TYPE ggh gaugehistogram
            TYPE go_gc_duration_seconds summary
            TYPE go_goroutines gauge
            TYPE hh histogram
            TYPE hhh histogram
            TYPE ii info
            TYPE ss stateset
            TYPE un unknown
            HELP go_gc_duration_seconds "A summary of the GC invocation durations."
            HELP help2 "escape \\ \n \""
            HELP nohelp1 ""
        "#]],
    );
}

#[test]
fn open_metrics_end_of_file() {
    check(
        OM,
        "a 1\n# EOF",
        expect![[r#"
        a 1.0
    "#]],
    );
    check(OM, "# EOF\n", expect![""]);
    check(
        OM,
        "",
        expect![[r#"
        error: line 1: data does not end with # EOF
    "#]],
    );
    check(
        OM,
        "a 1\n",
        expect![[r#"
        error: line 2: data does not end with # EOF
    "#]],
    );
    check(
        OM,
        "a 1",
        expect![[r#"
        error: line 1: data does not end with # EOF
    "#]],
    );
    check(
        OM,
        "a 1\n# EOF\n\n",
        expect![[r#"
        error: line 3: unexpected data after # EOF
    "#]],
    );
    check(
        OM,
        "a 1\n# EOF\nb 2\n",
        expect![[r#"
        error: line 3: unexpected data after # EOF
    "#]],
    );
    check(
        OM,
        "a 1\n# EOF \n",
        expect![[r#"
        error: line 2: unexpected data after # EOF
    "#]],
    );
}

#[test]
fn open_metrics_is_strict_about_spacing() {
    for (body, line) in [
        ("\na 1\n# EOF\n", 1),
        (" a 1\n# EOF\n", 1),
        ("a  1\n# EOF\n", 1),
        ("a\t1\n# EOF\n", 1),
        ("a 1 \n# EOF\n", 1),
        ("a 1 2 \n# EOF\n", 1),
        ("a 1  2\n# EOF\n", 1),
        ("a{b=\"c\"}1\n# EOF\n", 1),
        ("a {b=\"c\"} 1\n# EOF\n", 1),
        ("a{ b=\"c\"} 1\n# EOF\n", 1),
        ("a{b=\"c\" } 1\n# EOF\n", 1),
        ("a{b = \"c\"} 1\n# EOF\n", 1),
        ("a{b=\"c\" d=\"e\"} 1\n# EOF\n", 1),
        ("a{b=\"c\",,} 1\n# EOF\n", 1),
        ("a 1\n#  HELP a b\n# EOF\n", 2),
        ("a 1\n# HELP  a b\n# EOF\n", 2),
        ("a 1\n# HELP a\n# EOF\n", 2),
        ("a 1\n# a comment\n# EOF\n", 2),
        ("a 1\n#\n# EOF\n", 2),
        ("a 1 # {x=\"y\"}  1\n# EOF\n", 1),
        ("a 1 # {x=\"y\"} 1 2 3\n# EOF\n", 1),
        ("a 1 #{x=\"y\"} 1\n# EOF\n", 1),
        ("a 1 2 3\n# EOF\n", 1),
    ] {
        let err = parse(body.as_bytes(), OM, &Limits::default()).unwrap_err();
        assert_eq!(err.line, line, "{body:?}: {err}");
    }
}

#[test]
fn open_metrics_errors() {
    check(
        OM,
        "a{b=\"\\t\"} 1\n# EOF\n",
        expect![[r#"
        error: line 1: invalid escape \t in the value of label b
    "#]],
    );
    check(
        OM,
        "# HELP a \\x\n# EOF\n",
        expect![[r#"
        error: line 1: invalid escape \x in help text
    "#]],
    );
    check(
        OM,
        "a 1 NaN\n# EOF\n",
        expect![[r#"
        error: line 1: invalid timestamp "NaN"
    "#]],
    );
    check(
        OM,
        "a 1 +Inf\n# EOF\n",
        expect![[r#"
        error: line 1: invalid timestamp "+Inf"
    "#]],
    );
    check(
        OM,
        "a 1 1e17\n# EOF\n",
        expect![[r#"
        error: line 1: timestamp "1e17" out of range
    "#]],
    );
    check(
        OM,
        "a 1 # {x=\"y\"} 1 NaN\n# EOF\n",
        expect![[r#"
        error: line 1: exemplar: invalid timestamp "NaN"
    "#]],
    );
    check(
        OM,
        "a 1 # {x=\"y\"}\n# EOF\n",
        expect![[r#"
        error: line 1: expected one space and a value after the exemplar's labels, got the end of the line
    "#]],
    );
    check(
        OM,
        "a 1 # {x=\"\\q\"} 1\n# EOF\n",
        expect![[r#"
        error: line 1: exemplar: invalid escape \q in the value of label x
    "#]],
    );
    check(
        OM,
        "# UNIT a_seconds bytes\n# EOF\n",
        expect![[r#"
        error: line 1: unit "bytes" is not a suffix of metric a_seconds
    "#]],
    );
    check(
        OM,
        "# UNIT seconds seconds\n# EOF\n",
        expect![[r#"
        error: line 1: unit "seconds" is not a suffix of metric seconds
    "#]],
    );
    check(
        OM,
        "# TYPE a untyped\n# EOF\n",
        expect![[r#"
        error: line 1: invalid metric type "untyped" for a (counter, gauge, histogram, gaugehistogram, summary, info, stateset or unknown)
    "#]],
    );
    check(
        OM,
        "a_total 1\n# TYPE a counter\n# EOF\n",
        expect![[r#"
        error: line 2: TYPE line for metric a after its samples (first sample a_total at line 1)
    "#]],
    );
    check(
        OM,
        "a 1\r\n# EOF\n",
        expect![[r#"
        error: line 1: invalid value "1\r"
    "#]],
    );
}

#[test]
fn open_metrics_timestamps_are_seconds() {
    check(
        OM,
        "a 1 0\nb 1 1.5\nc 1 -1.5\nd 1 0.0019\ne 1 1700000000\nf 1 1e3\n# EOF\n",
        expect![[r#"
            a 1.0 @0
            b 1.0 @1500
            c 1.0 @-1500
            d 1.0 @1
            e 1.0 @1700000000000
            f 1.0 @1000000
        "#]],
    );
}

mod round_trip {
    //! Random samples, written out as an exporter would (with the blanks and commas each format
    //! allows), parse back to themselves.

    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn label_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[\\\\\"\n,=}{ a-zé✓日\t]{0,12}",
            Just(String::new()),
        ]
    }

    fn sample() -> impl Strategy<Value = Sample> {
        let name = "[a-zA-Z_:][a-zA-Z0-9_:]{0,16}";
        let label_name = "[a-zA-Z_][a-zA-Z0-9_]{0,10}".prop_filter("reserved", |n| n != "__name__");
        let value = prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            (0u32..1000).prop_map(f64::from),
        ];
        (
            name,
            proptest::collection::btree_map(label_name, label_value(), 0..6),
            value,
            proptest::option::of(0..=i64::MAX),
        )
            .prop_map(|(name, labels, value, timestamp_ms)| Sample {
                name,
                labels,
                value,
                timestamp_ms,
            })
    }

    /// Distinct series only: a body with the same series twice is refused.
    fn samples() -> impl Strategy<Value = Vec<Sample>> {
        proptest::collection::vec(sample(), 0..24).prop_map(|samples| {
            let mut seen = BTreeSet::new();
            samples
                .into_iter()
                .filter(|s| seen.insert((s.name.clone(), s.labels.clone())))
                .collect()
        })
    }

    fn escape(value: &str) -> String {
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    }

    fn number(value: f64, scientific: bool) -> String {
        if value.is_nan() {
            "NaN".into()
        } else if value.is_infinite() {
            if value > 0.0 { "+Inf" } else { "-Inf" }.into()
        } else if scientific {
            format!("{value:e}")
        } else {
            format!("{value}")
        }
    }

    /// Text 0.0.4 as an exporter writes it; `loose` adds the blanks and the trailing comma
    /// the format allows.
    fn text(samples: &[Sample], loose: bool) -> String {
        let mut out = String::new();
        for (i, s) in samples.iter().enumerate() {
            let blank = if loose { " \t" } else { "" };
            out.push_str(blank);
            out.push_str(&s.name);
            if !s.labels.is_empty() || (loose && i % 2 == 0) {
                out.push_str(blank);
                out.push('{');
                for (name, value) in &s.labels {
                    out.push_str(&format!(
                        "{blank}{name}{blank}={blank}\"{}\"{blank},",
                        escape(value)
                    ));
                }
                if !loose && !s.labels.is_empty() {
                    out.pop();
                }
                out.push('}');
            }
            out.push(' ');
            out.push_str(blank);
            out.push_str(&number(s.value, i % 3 == 0));
            if let Some(ts) = s.timestamp_ms {
                out.push_str(&format!(" {blank}{ts}"));
            }
            out.push_str(blank);
            out.push('\n');
            if loose {
                out.push_str("# a comment, and a blank line\n\n");
            }
        }
        out
    }

    /// OpenMetrics; timestamps as seconds with three decimals.
    fn open_metrics(samples: &[Sample]) -> String {
        let mut out = String::new();
        for (i, s) in samples.iter().enumerate() {
            out.push_str(&s.name);
            if !s.labels.is_empty() {
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|(name, value)| format!("{name}=\"{}\"", escape(value)))
                    .collect();
                out.push_str(&format!("{{{}}}", labels.join(",")));
            }
            out.push(' ');
            out.push_str(&number(s.value, i % 3 == 0));
            if let Some(ts) = s.timestamp_ms {
                out.push_str(&format!(" {}.{:03}", ts / 1000, ts % 1000));
            }
            if i % 4 == 1 {
                out.push_str(" # {trace_id=\"0af7651916cd43dd\"} 1.5");
            }
            out.push('\n');
        }
        out.push_str("# EOF\n");
        out
    }

    fn same_value(a: f64, b: f64) -> bool {
        (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
    }

    proptest! {
        #[test]
        fn text_round_trips(samples in samples(), loose in any::<bool>()) {
            let body = text(&samples, loose);
            let parsed = parse(body.as_bytes(), Format::Text004, &Limits::default())
                .map_err(|e| TestCaseError::fail(format!("{e}\n{body}")))?;
            prop_assert_eq!(parsed.samples.len(), samples.len());
            for (got, want) in parsed.samples.iter().zip(&samples) {
                prop_assert_eq!(&got.name, &want.name);
                prop_assert_eq!(&got.labels, &want.labels);
                prop_assert!(same_value(got.value, want.value), "{} != {}", got.value, want.value);
                prop_assert_eq!(got.timestamp_ms, want.timestamp_ms);
            }
        }

        #[test]
        fn open_metrics_round_trips(samples in samples()) {
            // Seconds × 1000 in floating point, truncated as Prometheus does, may land a
            // millisecond short; and an f64 holds milliseconds exactly only below 2^53.
            let samples: Vec<Sample> = samples
                .into_iter()
                .map(|s| Sample { timestamp_ms: s.timestamp_ms.map(|t| t % (1 << 50)), ..s })
                .collect();
            let body = open_metrics(&samples);
            let parsed = parse(body.as_bytes(), Format::OpenMetrics, &Limits::default())
                .map_err(|e| TestCaseError::fail(format!("{e}\n{body}")))?;
            prop_assert_eq!(parsed.samples.len(), samples.len());
            for (got, want) in parsed.samples.iter().zip(&samples) {
                prop_assert_eq!(&got.name, &want.name);
                prop_assert_eq!(&got.labels, &want.labels);
                prop_assert!(same_value(got.value, want.value), "{} != {}", got.value, want.value);
                match (got.timestamp_ms, want.timestamp_ms) {
                    (Some(g), Some(w)) => prop_assert!((w - 1..=w).contains(&g), "{g} vs {w}"),
                    (g, w) => prop_assert_eq!(g, w),
                }
            }
        }

        /// Whatever the bytes, an answer and no panic.
        #[test]
        fn any_bytes_are_answered(body in proptest::collection::vec(any::<u8>(), 0..256), om in any::<bool>()) {
            let format = if om { Format::OpenMetrics } else { Format::Text004 };
            let _ = parse(&body, format, &Limits::default());
        }
    }
}
