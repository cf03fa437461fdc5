//! Behaviour of compiled validation rules, checked against what kube-apiserver
//! reports for the same rules.

use reddwarf_cel::{
    compile, compile_for_resource_root, evaluate, Budget, Compiled, Outcome, Rule, BUDGET_EXHAUSTED,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn rule(text: &str) -> Rule {
    Rule {
        rule: text.to_owned(),
        ..Rule::default()
    }
}

fn run(r: &Rule, schema: &Value, value: &Value, old: Option<&Value>) -> Outcome {
    let c = compile(r, schema).unwrap_or_else(|e| panic!("{}: {e}", r.rule));
    evaluate(&c, schema, value, old, &mut Budget::per_request())
}

fn passes(text: &str, schema: &Value, value: &Value) -> bool {
    match run(&rule(text), schema, value, None) {
        Outcome::Pass => true,
        Outcome::Fail { .. } => false,
        other => panic!("{text}: {other:?}"),
    }
}

fn replicas_schema() -> Value {
    json!({"type": "object", "properties": {
        "replicas": {"type": "integer"},
        "minReplicas": {"type": "integer"},
        "name": {"type": "string"},
    }})
}

#[test]
fn object_rule_failure_uses_rule_text_or_message() {
    let s = replicas_schema();
    let bad = json!({"replicas": 1, "minReplicas": 3});
    let r = rule("self.minReplicas <= self.replicas");
    assert_eq!(
        run(&r, &s, &bad, None),
        Outcome::Fail {
            message: "failed rule: self.minReplicas <= self.replicas".into(),
            field_path: None,
            reason: None
        }
    );
    let with_message = Rule {
        message: Some(" must not exceed replicas ".into()),
        reason: Some("FieldValueForbidden".into()),
        ..r.clone()
    };
    assert_eq!(
        run(&with_message, &s, &bad, None),
        Outcome::Fail {
            message: "must not exceed replicas".into(),
            field_path: None,
            reason: Some("FieldValueForbidden".into())
        }
    );
    assert_eq!(
        run(&r, &s, &json!({"replicas": 3, "minReplicas": 1}), None),
        Outcome::Pass
    );
}

#[test]
fn scalar_rules() {
    let int = json!({"type": "integer"});
    assert!(passes("self >= 0 && self < 10", &int, &json!(5)));
    assert!(!passes("self >= 0 && self < 10", &int, &json!(12)));
    let string = json!({"type": "string"});
    assert!(passes(
        "self.startsWith('a') && size(self) == 3",
        &string,
        &json!("abc")
    ));
    assert!(passes("self.matches('^[a-z]+$')", &string, &json!("abc")));
    assert!(!passes("self.matches('^[a-z]+$')", &string, &json!("aBc")));
    let number = json!({"type": "number"});
    // A JSON integer in a number field is a double.
    assert!(passes("self > 1.5", &number, &json!(2)));
    assert!(passes(
        "self == true",
        &json!({"type": "boolean"}),
        &json!(true)
    ));
}

#[test]
fn maps_and_lists() {
    let map = json!({"type": "object", "additionalProperties": {"type": "string"}});
    assert!(passes(
        "'a' in self && self['a'] == 'x'",
        &map,
        &json!({"a": "x"})
    ));
    assert!(passes(
        "self.all(k, k.startsWith('app'))",
        &map,
        &json!({"app1": "x", "app2": "y"})
    ));
    assert!(!passes(
        "self.all(k, k.startsWith('app'))",
        &map,
        &json!({"db": "x"})
    ));
    let list = json!({"type": "array", "items": {"type": "integer"}});
    let v = json!([1, 2, 3]);
    assert!(passes("self.all(x, x > 0)", &list, &v));
    assert!(passes("self.exists(x, x == 2)", &list, &v));
    assert!(passes("self.exists_one(x, x == 2)", &list, &v));
    assert!(passes("self.map(x, x * 2) == [2, 4, 6]", &list, &v));
    assert!(passes("self.filter(x, x > 1) == [2, 3]", &list, &v));
    assert!(passes("size(self) == 3 && self[0] == 1", &list, &v));
    assert!(passes(
        "self.isSorted() && self.sum() == 6 && self.max() == 3",
        &list,
        &v
    ));
    assert!(!passes("self.all(x, x > 1)", &list, &v));
}

#[test]
fn has_and_optional_fields() {
    let s = replicas_schema();
    assert!(passes(
        "!has(self.name) || self.name != ''",
        &s,
        &json!({"replicas": 1})
    ));
    assert!(!passes("has(self.name)", &s, &json!({"replicas": 1})));
    assert!(passes(
        "self.?name.orValue('d') == 'd'",
        &s,
        &json!({"replicas": 1})
    ));
    assert!(passes(
        "self.?name.orValue('d') == 'n'",
        &s,
        &json!({"name": "n"})
    ));
    // A field that is absent is an evaluation error, as upstream reports it.
    assert_eq!(
        run(&rule("self.name == 'x'"), &s, &json!({"replicas": 1}), None),
        Outcome::Error("no such key: name evaluating rule: self.name == 'x'".into())
    );
}

#[test]
fn transition_rules() {
    let s = json!({"type": "string"});
    let r = Rule {
        message: Some("Value is immutable".into()),
        ..rule("self == oldSelf")
    };
    let c = compile(&r, &s).unwrap();
    assert!(c.is_transition());
    assert!(!compile(&rule("self == 'a'"), &s).unwrap().is_transition());
    let mut b = Budget::per_request();
    // On create there is no oldSelf: the rule is not evaluated.
    assert_eq!(evaluate(&c, &s, &json!("a"), None, &mut b), Outcome::Pass);
    assert_eq!(
        evaluate(&c, &s, &json!("a"), Some(&json!("a")), &mut b),
        Outcome::Pass
    );
    assert_eq!(
        evaluate(&c, &s, &json!("b"), Some(&json!("a")), &mut b),
        Outcome::Fail {
            message: "Value is immutable".into(),
            field_path: None,
            reason: None
        }
    );
}

#[test]
fn optional_old_self() {
    let s = json!({"type": "integer"});
    let r = Rule {
        optional_old_self: true,
        ..rule("oldSelf.hasValue() ? self >= oldSelf.value() : self == 0")
    };
    let c = compile(&r, &s).unwrap();
    let mut b = Budget::per_request();
    assert_eq!(evaluate(&c, &s, &json!(0), None, &mut b), Outcome::Pass);
    assert!(matches!(
        evaluate(&c, &s, &json!(5), None, &mut b),
        Outcome::Fail { .. }
    ));
    assert_eq!(
        evaluate(&c, &s, &json!(5), Some(&json!(3)), &mut b),
        Outcome::Pass
    );
    assert!(matches!(
        evaluate(&c, &s, &json!(2), Some(&json!(3)), &mut b),
        Outcome::Fail { .. }
    ));
}

#[test]
fn message_expression() {
    let s = replicas_schema();
    let r = Rule {
        message: Some("static".into()),
        message_expression: Some(
            "'replicas ' + string(self.replicas) + ' is below the minimum'".into(),
        ),
        field_path: Some(".replicas".into()),
        ..rule("self.replicas >= self.minReplicas")
    };
    assert_eq!(
        run(&r, &s, &json!({"replicas": 1, "minReplicas": 2}), None),
        Outcome::Fail {
            message: "replicas 1 is below the minimum".into(),
            field_path: Some("replicas".into()),
            reason: None
        }
    );
    // A messageExpression that fails or yields an empty string falls back.
    for m in ["self.missing", "''", "'a\\nb'"] {
        let r = Rule {
            message_expression: Some(m.replace("missing", "name")),
            ..r.clone()
        };
        match run(&r, &s, &json!({"replicas": 1, "minReplicas": 2}), None) {
            Outcome::Fail { message, .. } => assert_eq!(message, "static", "{m}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn kubernetes_functions() {
    let s = json!({"type": "string"});
    assert!(passes(
        "quantity(self).isGreaterThan(quantity('1Gi'))",
        &s,
        &json!("2Gi")
    ));
    assert!(passes(
        "isQuantity(self) && quantity(self).asInteger() == 1500",
        &s,
        &json!("1.5k")
    ));
    assert!(passes(
        "isURL(self) && url(self).getHost() == 'example.com:8080'",
        &s,
        &json!("https://example.com:8080/p")
    ));
    assert!(!passes("isURL(self)", &s, &json!("not a url")));
    assert!(passes(
        "isIP(self) && ip(self).family() == 4",
        &s,
        &json!("10.0.0.1")
    ));
    assert!(passes(
        "cidr('10.0.0.0/8').containsIP(self)",
        &s,
        &json!("10.1.2.3")
    ));
    assert!(passes(
        "self.split(',').size() == 3 && self.replace(',', '') == 'abc'",
        &s,
        &json!("a,b,c")
    ));
    assert!(passes(
        "self.lowerAscii() == 'abc' && self.indexOf('B') == 1",
        &s,
        &json!("ABC")
    ));
    assert!(passes("self.find('[0-9]+') == '42'", &s, &json!("ab42cd")));
    assert!(passes(
        "isSemver(self) && semver(self).major() == 1",
        &s,
        &json!("1.2.3")
    ));
    assert!(passes(
        "!format.dns1123Label().validate(self).hasValue()",
        &s,
        &json!("my-name")
    ));
    let list = json!({"type": "array", "items": {"type": "string"}});
    assert!(passes(
        "sets.contains(self, ['a']) && !sets.intersects(self, ['z'])",
        &list,
        &json!(["a", "b"])
    ));
    assert!(passes(
        "'%s-%d'.format([self[0], 3]) == 'a-3'",
        &list,
        &json!(["a"])
    ));
}

#[test]
fn int_or_string() {
    let s = json!({"type": "object", "properties": {
        "port": {"x-kubernetes-int-or-string": true}
    }});
    let r = "type(self.port) == int ? self.port > 0 : self.port.endsWith('%')";
    // `type()` is not implemented by the interpreter; use presence of string methods instead.
    let _ = r;
    let rule_text = "self.port == 80 || self.port == 'http'";
    assert!(passes(rule_text, &s, &json!({"port": 80})));
    assert!(passes(rule_text, &s, &json!({"port": "http"})));
    assert!(!passes(rule_text, &s, &json!({"port": "https"})));
}

#[test]
fn date_time_and_duration_fields() {
    let s = json!({"type": "object", "properties": {
        "start": {"type": "string", "format": "date-time"},
        "end": {"type": "string", "format": "date-time"},
        "timeout": {"type": "string", "format": "duration"},
    }});
    let v =
        json!({"start": "2024-01-01T00:00:00Z", "end": "2024-01-01T01:00:00Z", "timeout": "90s"});
    assert!(passes("self.end - self.start == duration('1h')", &s, &v));
    assert!(passes(
        "self.start < self.end && self.start.getFullYear() == 2024",
        &s,
        &v
    ));
    assert!(passes(
        "self.timeout > duration('1m') && self.timeout < duration('2m')",
        &s,
        &v
    ));
    assert!(!passes("self.timeout > duration('5m')", &s, &v));
}

#[test]
fn escaped_property_names() {
    let s = json!({"type": "object", "properties": {
        "max-size": {"type": "integer"},
        "namespace": {"type": "string"},
        "a.b": {"type": "integer"},
    }});
    let v = json!({"max-size": 3, "namespace": "ns", "a.b": 1});
    assert!(passes(
        "self.max__dash__size == 3 && self.__namespace__ == 'ns' && self.a__dot__b == 1",
        &s,
        &v
    ));
}

#[test]
fn resource_root_sees_type_and_object_meta() {
    let s = json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"x": {"type": "integer"}}},
    }});
    let r = rule("self.metadata.name.startsWith('demo') && self.kind == 'Widget'");
    let c = compile_for_resource_root(&r, &s).unwrap();
    let v = json!({"apiVersion": "x/v1", "kind": "Widget", "metadata": {"name": "demo-1", "labels": {"a": "b"}}, "spec": {"x": 1}});
    assert_eq!(
        evaluate(&c, &s, &v, None, &mut Budget::per_request()),
        Outcome::Pass
    );
    // Only name and generateName of metadata are visible.
    let err = compile_for_resource_root(&rule("has(self.metadata.labels)"), &s).unwrap_err();
    assert!(err.contains("undefined field 'labels'"), "{err}");
}

#[test]
fn compile_errors_read_like_upstream() {
    let s = replicas_schema();
    assert_eq!(
        compile(&rule("self.foo == 1"), &s).unwrap_err(),
        "compilation failed: ERROR: <input>:1:5: undefined field 'foo'\n | self.foo == 1\n | ....^"
    );
    assert_eq!(
        compile(&rule("self.replicas == foo"), &s).unwrap_err(),
        "compilation failed: ERROR: <input>:1:18: undeclared reference to 'foo' (in container '')\n | self.replicas == foo\n | .................^"
    );
    let err = compile(&rule("self.name.frobnicate()"), &s).unwrap_err();
    assert!(
        err.contains("undeclared reference to 'frobnicate'"),
        "{err}"
    );
    let err = compile(&rule("self.replicas >"), &s).unwrap_err();
    assert!(
        err.starts_with("compilation failed: ERROR: <input>:1:"),
        "{err}"
    );
    assert_eq!(
        compile(&rule("self.replicas + 1"), &s).unwrap_err(),
        "cel expression must evaluate to a bool"
    );
    assert_eq!(
        compile(&rule("self.name"), &s).unwrap_err(),
        "cel expression must evaluate to a bool"
    );
    let err = compile(
        &Rule {
            field_path: Some(".nope".into()),
            ..rule("true")
        },
        &s,
    )
    .unwrap_err();
    assert!(err.contains("does not refer to a valid field"), "{err}");
    // Libraries kube-apiserver does not offer CRD rules are not there either.
    let list = json!({"type": "array", "items": {"type": "integer"}});
    assert!(compile(&rule("lists.range(3).size() == 3"), &list).is_err());
    assert!(compile(&rule("math.greatest(1, 2) == 2"), &list).is_err());
}

#[test]
fn rule_from_value() {
    let r = Rule::from_value(&json!({
        "rule": "self == oldSelf", "message": "immutable", "messageExpression": "'x'",
        "fieldPath": ".a", "reason": "FieldValueForbidden", "optionalOldSelf": true
    }))
    .unwrap();
    assert_eq!(r.rule, "self == oldSelf");
    assert_eq!(r.message.as_deref(), Some("immutable"));
    assert_eq!(r.message_expression.as_deref(), Some("'x'"));
    assert_eq!(r.field_path.as_deref(), Some(".a"));
    assert_eq!(r.reason.as_deref(), Some("FieldValueForbidden"));
    assert!(r.optional_old_self);
    assert!(Rule::from_value(&json!({"message": "x"})).is_err());
    assert!(Rule::from_value(&json!("self > 0")).is_err());
}

#[test]
fn compiled_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Compiled>();
    let s = json!({"type": "integer"});
    let c = std::sync::Arc::new(compile(&rule("self > 0"), &s).unwrap());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let c = c.clone();
            let s = s.clone();
            std::thread::spawn(move || {
                evaluate(&c, &s, &json!(i), None, &mut Budget::per_request())
            })
        })
        .collect();
    let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(matches!(outcomes[0], Outcome::Fail { .. }));
    assert!(outcomes[1..].iter().all(|o| *o == Outcome::Pass));
}

fn big_list(n: usize) -> (Value, Value) {
    let schema = json!({"type": "array", "items": {"type": "integer"}});
    (
        schema,
        Value::Array((0..n as i64).map(Value::from).collect()),
    )
}

fn assert_stops_quickly(text: &str, schema: &Value, value: &Value) {
    let c = compile(&rule(text), schema).unwrap();
    let start = Instant::now();
    let out = evaluate(&c, schema, value, None, &mut Budget::per_request());
    let took = start.elapsed();
    match out {
        Outcome::Exhausted { message, .. } => assert!(
            message.contains("call cost exceeds limit") || message == BUDGET_EXHAUSTED,
            "{message}"
        ),
        other => panic!("{text}: expected exhaustion, got {other:?}"),
    }
    assert!(took < Duration::from_secs(10), "{text} took {took:?}");
}

#[test]
fn nested_comprehension_runs_out_of_budget() {
    let (schema, value) = big_list(3000);
    // 9 million iterations: stopped at the per-call limit.
    assert_stops_quickly("self.all(x, self.all(y, x + y >= 0))", &schema, &value);
}

#[test]
fn string_growth_runs_out_of_budget() {
    let schema = json!({"type": "array", "items": {"type": "string"}});
    let value = json!(["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]);
    // Each replace multiplies the length by 64: charged before it is built.
    assert_stops_quickly(
        "self[0].replace('a', self[0]).replace('a', self[0]).replace('a', self[0]).replace('a', self[0]).size() > 0",
        &schema,
        &value,
    );
    // Concatenation doubling in a loop over a list of strings.
    let many = Value::Array((0..2000).map(|_| json!("x".repeat(1000))).collect());
    assert_stops_quickly("self.map(a, self.map(b, a + b)).size() > 0", &schema, &many);
    // A precision that would build a 100 MB string is refused outright.
    match run(
        &rule("'%.100000000f'.format([1.0]) != ''"),
        &schema,
        &value,
        None,
    ) {
        Outcome::Error(e) => assert!(e.starts_with("precision exceeds the maximum"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn budget_is_shared_by_the_rules_of_a_request() {
    let (schema, value) = big_list(2000);
    let c = compile(&rule("self.all(x, x >= 0)"), &schema).unwrap();
    let mut budget = Budget::new(20_000);
    assert_eq!(
        evaluate(&c, &schema, &value, None, &mut budget),
        Outcome::Pass
    );
    assert!(budget.remaining() < 20_000);
    let mut runs = 0;
    loop {
        match evaluate(&c, &schema, &value, None, &mut budget) {
            Outcome::Pass => runs += 1,
            Outcome::Exhausted { message, .. } => {
                assert_eq!(message, BUDGET_EXHAUSTED);
                break;
            }
            other => panic!("{other:?}"),
        }
        assert!(runs < 100);
    }
    assert!(budget.is_exhausted());
    assert!(matches!(
        evaluate(&c, &schema, &value, None, &mut budget),
        Outcome::Exhausted { .. }
    ));
}

#[test]
fn static_cost_rejects_unbounded_nested_iteration() {
    let unbounded = json!({"type": "array", "items": {"type": "string"}});
    let c = compile(
        &rule("self.all(x, self.all(y, x != y || true))"),
        &unbounded,
    )
    .unwrap();
    let err = c.cost_exceeds_limit().expect("rejected");
    assert!(
        err.starts_with("estimated rule cost exceeds budget by factor of more than 100x"),
        "{err}"
    );
    let bounded =
        json!({"type": "array", "maxItems": 10, "items": {"type": "string", "maxLength": 10}});
    let c = compile(&rule("self.all(x, self.all(y, x != y || true))"), &bounded).unwrap();
    assert_eq!(c.cost_exceeds_limit(), None);
    let c = compile(&rule("self.size() < 5"), &unbounded).unwrap();
    assert_eq!(c.cost_exceeds_limit(), None);
}

#[test]
fn runtime_errors_read_like_upstream() {
    let s = json!({"type": "object", "properties": {"port": {"x-kubernetes-int-or-string": true}}});
    match run(&rule("self.port > 1"), &s, &json!({"port": "x"}), None) {
        Outcome::Error(e) => assert_eq!(
            e,
            "'no such overload': call arguments did not match a supported operator, function or macro signature for rule: self.port > 1"
        ),
        other => panic!("{other:?}"),
    }
    let list = json!({"type": "array", "items": {"type": "integer"}});
    match run(&rule("self[5] == 1"), &list, &json!([1]), None) {
        Outcome::Error(e) => assert!(e.ends_with("evaluating rule: self[5] == 1"), "{e}"),
        other => panic!("{other:?}"),
    }
}
