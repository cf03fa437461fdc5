//! Whether a pod may run on a node by its `nodeSelector` and required node affinity
//! (upstream `NodeSelectorRequirementsAsSelector`, `GetRequiredNodeAffinity`).

/// Whether a node selector requirement holds for `value` (a label's value, or a field's).
/// `Gt`/`Lt` compare integers, as upstream's `NodeSelectorRequirementsAsSelector` does.
fn node_requirement_holds(
    req: &k8s_openapi::api::core::v1::NodeSelectorRequirement,
    value: Option<&str>,
) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let int = |s: &str| s.parse::<i64>().ok();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(want)) =
                (value.and_then(int), values.first().and_then(|v| int(v)))
            else {
                return false;
            };
            if req.operator == "Gt" {
                have > want
            } else {
                have < want
            }
        }
        _ => false,
    }
}

/// One node selector term: all expressions (labels) and fields (`metadata.name`) hold. A
/// term with neither matches nothing, as upstream.
pub fn node_selector_term_matches(
    term: &k8s_openapi::api::core::v1::NodeSelectorTerm,
    node: &k8s_openapi::api::core::v1::Node,
) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.metadata.labels.as_ref();
    exprs
        .iter()
        .all(|r| node_requirement_holds(r, labels.and_then(|l| l.get(&r.key)).map(String::as_str)))
        && fields.iter().all(|r| {
            let value = match r.key.as_str() {
                "metadata.name" => node.metadata.name.as_deref(),
                _ => None,
            };
            node_requirement_holds(r, value)
        })
}

/// Whether a pod with this spec may run on `node` by its `nodeSelector` and required node
/// affinity (upstream `GetRequiredNodeAffinity(pod).Match(node)`).
pub fn node_fits_pod_selectors(
    spec: &k8s_openapi::api::core::v1::PodSpec,
    node: &k8s_openapi::api::core::v1::Node,
) -> bool {
    let labels = node.metadata.labels.as_ref();
    if let Some(sel) = &spec.node_selector {
        if sel
            .iter()
            .any(|(k, v)| labels.and_then(|l| l.get(k)) != Some(v))
        {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        None => true,
        Some(sel) => sel
            .node_selector_terms
            .iter()
            .any(|t| node_selector_term_matches(t, node)),
    }
}
