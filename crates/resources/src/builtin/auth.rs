//! authentication.k8s.io/v1 and authorization.k8s.io/v1: the review APIs. Each is a create
//! that answers a question (who is asking, is this token valid, may this user do that) and
//! stores nothing.

use super::BASE;
use crate::{Backend, NameRule, ResourceKind};

const REVIEW: ResourceKind = ResourceKind {
    version: "v1",
    namespaced: false,
    verbs: &["create"],
    backend: Backend::Review,
    name_rule: NameRule::PathSegment,
    ..BASE
};

pub(super) fn authentication() -> Vec<ResourceKind> {
    let group = "authentication.k8s.io";
    vec![
        ResourceKind {
            group,
            kind: "SelfSubjectReview",
            plural: "selfsubjectreviews",
            singular: "selfsubjectreview",
            ..REVIEW
        },
        ResourceKind {
            group,
            kind: "TokenReview",
            plural: "tokenreviews",
            singular: "tokenreview",
            ..REVIEW
        },
    ]
}

pub(super) fn authorization() -> Vec<ResourceKind> {
    let group = "authorization.k8s.io";
    vec![
        ResourceKind {
            group,
            kind: "LocalSubjectAccessReview",
            plural: "localsubjectaccessreviews",
            singular: "localsubjectaccessreview",
            namespaced: true,
            ..REVIEW
        },
        ResourceKind {
            group,
            kind: "SelfSubjectAccessReview",
            plural: "selfsubjectaccessreviews",
            singular: "selfsubjectaccessreview",
            ..REVIEW
        },
        ResourceKind {
            group,
            kind: "SelfSubjectRulesReview",
            plural: "selfsubjectrulesreviews",
            singular: "selfsubjectrulesreview",
            ..REVIEW
        },
        ResourceKind {
            group,
            kind: "SubjectAccessReview",
            plural: "subjectaccessreviews",
            singular: "subjectaccessreview",
            ..REVIEW
        },
    ]
}
