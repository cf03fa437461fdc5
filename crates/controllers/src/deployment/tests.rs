//! Table tests of the controller's arithmetic, with upstream's cases
//! (`pkg/controller/deployment/util/deployment_util_test.go`, `sync_test.go`,
//! `rolling_test.go`). Upstream's test fixtures default maxSurge and maxUnavailable to 0.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStatus, DeploymentStrategy, ReplicaSet, ReplicaSetSpec,
    ReplicaSetStatus, RollingUpdateDeployment,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;

use super::annotations::set_replicas_annotations;
use super::rolling::{
    fenceposts, max_scaled_down, max_surge, max_unavailable, new_rs_new_replicas, new_rs_target,
    rolling_scale_downs, unhealthy_scale_downs,
};
use super::sync::{is_saturated, rs_fraction, rs_proportion, scale_plan};
use super::{rs_replicas, MAX_REPLICAS_ANNOTATION};

fn int(n: i32) -> IntOrString {
    IntOrString::Int(n)
}

fn pct(s: &str) -> IntOrString {
    IntOrString::String(s.into())
}

/// A RollingUpdate deployment; `None` leaves the field unset.
fn rolling(
    replicas: i32,
    surge: Option<IntOrString>,
    unavailable: Option<IntOrString>,
) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("foo".into()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: surge,
                    max_unavailable: unavailable,
                }),
            }),
            ..Default::default()
        }),
        status: None,
    }
}

fn recreate(replicas: i32) -> Deployment {
    let mut d = rolling(replicas, None, None);
    d.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    });
    d
}

/// A set of `replicas` created `age` seconds after the epoch (larger is newer).
fn rs(name: &str, replicas: i32, age: i64) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            creation_timestamp: Some(Time(Timestamp::from_second(age).unwrap())),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            ..Default::default()
        }),
        status: None,
    }
}

fn available(mut rs: ReplicaSet, n: i32) -> ReplicaSet {
    rs.status = Some(ReplicaSetStatus {
        available_replicas: Some(n),
        ..Default::default()
    });
    rs
}

fn annotated(mut rs: ReplicaSet, key: &str, value: &str) -> ReplicaSet {
    rs.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(key.into(), value.into());
    rs
}

/// maxSurge, maxUnavailable, replicas, and the (surge, unavailable) they resolve to.
type Fenceposts = (Option<IntOrString>, Option<IntOrString>, i32, (i32, i32));

#[test]
fn fenceposts_resolve_like_upstream() {
    // (maxSurge, maxUnavailable, replicas) -> (surge, unavailable); upstream
    // TestResolveFenceposts plus int and rounding cases.
    let cases: &[Fenceposts] = &[
        (Some(pct("0%")), Some(pct("0%")), 0, (0, 1)),
        (Some(pct("39%")), Some(pct("39%")), 10, (4, 3)),
        (Some(pct("oops")), Some(pct("39%")), 10, (0, 0)),
        (Some(pct("55%")), Some(pct("urg")), 10, (0, 0)),
        (None, Some(pct("39%")), 10, (0, 3)),
        (Some(pct("39%")), None, 10, (4, 0)),
        (None, None, 10, (0, 1)),
        // Surge rounds up, unavailability down.
        (Some(pct("25%")), Some(pct("25%")), 10, (3, 2)),
        (Some(pct("25%")), Some(pct("25%")), 1, (1, 0)),
        (Some(pct("25%")), Some(pct("25%")), 4, (1, 1)),
        (Some(pct("100%")), Some(pct("100%")), 3, (3, 3)),
        (Some(pct("1%")), Some(pct("99%")), 1, (1, 0)),
        // Integers are taken as they are; both zero means one may be unavailable.
        (Some(int(2)), Some(int(0)), 10, (2, 0)),
        (Some(int(0)), Some(int(0)), 10, (0, 1)),
        (Some(int(0)), Some(int(3)), 10, (0, 3)),
        (Some(int(5)), Some(int(20)), 10, (5, 20)),
    ];
    for (surge, unavailable, replicas, want) in cases {
        let d = rolling(*replicas, surge.clone(), unavailable.clone());
        assert_eq!(
            fenceposts(&d),
            *want,
            "maxSurge {surge:?} maxUnavailable {unavailable:?} of {replicas}"
        );
    }
}

#[test]
fn max_unavailable_is_capped_by_replicas() {
    // Upstream TestMaxUnavailable (maxSurge 1) and TestMinAvailable.
    let cases = [
        (10, int(5), 5),
        (10, int(10), 10),
        (5, int(10), 5),
        (0, int(10), 0),
        (10, pct("50%"), 5),
        (10, pct("100%"), 10),
        (5, pct("100%"), 5),
        (10, pct("60%"), 6),
    ];
    for (replicas, unavailable, want) in cases {
        let d = rolling(replicas, Some(int(1)), Some(unavailable.clone()));
        assert_eq!(max_unavailable(&d), want, "{unavailable:?} of {replicas}");
        assert_eq!(max_surge(&d), 1);
    }
    assert_eq!(max_unavailable(&recreate(10)), 0);
    assert_eq!(max_surge(&recreate(10)), 0);
}

#[test]
fn new_set_grows_within_the_surge() {
    // Upstream TestNewRSNewReplicas: (strategy, replicas, new set, maxSurge) -> size, beside an
    // old set of 5.
    let cases = [
        ("RollingUpdate", 1, 5, 1, 5),
        ("RollingUpdate", 6, 2, 10, 6),
        ("Recreate", 3, 1, 1, 3),
    ];
    for (strategy, replicas, new_size, surge, want) in cases {
        let d = if strategy == "Recreate" {
            recreate(replicas)
        } else {
            rolling(replicas, Some(int(surge)), Some(int(1)))
        };
        let old = rs("old", 5, 1);
        let new = rs("new", new_size, 2);
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), want);
    }
}

#[test]
fn new_set_target_of_a_rolling_update() {
    // Upstream TestDeploymentController_reconcileNewReplicaSet (maxUnavailable 0):
    // (replicas, maxSurge, old, new) -> the new set's size.
    let cases = [
        (10, 0, 10, 0, 0),
        (10, 2, 10, 0, 2),
        (10, 2, 5, 0, 7),
        (10, 2, 10, 2, 2),
        (10, 2, 2, 11, 10),
    ];
    for (replicas, surge, old_size, new_size, want) in cases {
        let d = rolling(replicas, Some(int(surge)), Some(int(0)));
        let old = [rs("foo-old", old_size, 1)];
        let new = rs("foo-new", new_size, 2);
        assert_eq!(
            new_rs_target(&d, &new, &old),
            want,
            "replicas {replicas} surge {surge} old {old_size} new {new_size}"
        );
    }
}

#[test]
fn pods_an_old_set_still_reports_count_against_the_surge() {
    // Ours, not upstream's: an old set scaled to 8 that still has 10 pods leaves room for 2
    // new pods under a surge of 2, not 4.
    let d = rolling(10, Some(int(2)), Some(int(0)));
    let mut old = rs("old", 8, 1);
    old.status = Some(ReplicaSetStatus {
        replicas: 10,
        ..Default::default()
    });
    let new = rs("new", 0, 2);
    assert_eq!(new_rs_target(&d, &new, &[old]), 2);
}

/// The old sets' sizes after `reconcile_old_replica_sets`: unhealthy pods first, then the
/// rolling scale-down over what is left.
fn old_sizes_after_reconcile(d: &Deployment, new: &ReplicaSet, old: &[ReplicaSet]) -> Vec<i32> {
    let mut old = old.to_vec();
    let budget = max_scaled_down(d, new, &old);
    if budget <= 0 {
        return old.iter().map(rs_replicas).collect();
    }
    let cleanup = unhealthy_scale_downs(&old, budget);
    for (rs, down) in old.iter_mut().zip(cleanup) {
        rs.spec.as_mut().unwrap().replicas = Some(rs_replicas(rs) - down);
    }
    let downs = rolling_scale_downs(d, new, &old);
    old.iter()
        .zip(downs)
        .map(|(rs, down)| rs_replicas(rs) - down)
        .collect()
}

#[test]
fn old_sets_shrink_within_the_availability_budget() {
    // Upstream TestDeploymentController_reconcileOldReplicaSets (maxSurge 0):
    // (replicas, maxUnavailable, old, new, old available, new available) -> old size.
    let cases = [
        (10, 0, 10, 0, 10, 0, 9),
        (10, 2, 10, 0, 10, 0, 8),
        // Unhealthy old pods are cleaned up first.
        (10, 2, 10, 0, 8, 0, 8),
        // One unhealthy pod cleaned up and one ready pod scaled down.
        (10, 2, 10, 0, 9, 0, 8),
        // The new set's unavailable pods leave no budget.
        (10, 2, 8, 2, 8, 0, 8),
    ];
    for (replicas, unavailable, old_size, new_size, old_avail, new_avail, want) in cases {
        let d = rolling(replicas, Some(int(0)), Some(int(unavailable)));
        let old = [available(rs("foo-old", old_size, 1), old_avail)];
        let new = available(rs("foo-new", new_size, 2), new_avail);
        assert_eq!(
            old_sizes_after_reconcile(&d, &new, &old),
            vec![want],
            "replicas {replicas} maxUnavailable {unavailable} old {old_size}/{old_avail} new {new_size}/{new_avail}"
        );
    }
}

#[test]
fn unhealthy_old_pods_are_cleaned_up_first() {
    // Upstream TestDeploymentController_cleanupUnhealthyReplicas:
    // (old, available, max cleanup) -> pods removed.
    let cases = [(10, 8, 1, 1), (10, 8, 3, 2), (10, 8, 0, 0), (10, 10, 3, 0)];
    for (size, avail, max_cleanup, want) in cases {
        let old = [available(rs("foo-v2", size, 1), avail)];
        assert_eq!(unhealthy_scale_downs(&old, max_cleanup), vec![want]);
    }
    // Oldest first, the budget shared across sets.
    let old = [
        available(rs("a", 5, 1), 3),
        available(rs("b", 5, 2), 2),
        available(rs("c", 5, 3), 0),
    ];
    assert_eq!(unhealthy_scale_downs(&old, 4), vec![2, 2, 0]);
}

#[test]
fn a_set_reporting_more_available_pods_than_it_wants_is_not_cleaned_up() {
    // A set just scaled down from 7 to 5 still reports 7 available pods; cleanup must not
    // grow it back (upstream refuses such a scale, as an error).
    let old = [available(rs("old", 5, 1), 7)];
    assert_eq!(unhealthy_scale_downs(&old, 3), vec![0]);
}

#[test]
fn old_sets_scale_down_for_rolling_update() {
    // Upstream TestDeploymentController_scaleDownOldReplicaSetsForRollingUpdate (maxSurge 0,
    // no new pods): (replicas, maxUnavailable, available, old) -> old size.
    let cases = [
        (10, 0, 10, 10, 9),
        (10, 2, 10, 10, 8),
        (10, 2, 8, 10, 10),
        (10, 2, 10, 0, 0),
        (10, 2, 1, 10, 10),
    ];
    for (replicas, unavailable, avail, size, want) in cases {
        let d = rolling(replicas, Some(int(0)), Some(int(unavailable)));
        let old = [available(rs("foo-v2", size, 1), avail)];
        let new = rs("foo-new", 0, 2);
        let downs = rolling_scale_downs(&d, &new, &old);
        assert_eq!(
            size - downs[0],
            want,
            "{replicas} {unavailable} {avail} {size}"
        );
    }
}

/// Replicas, status replicas, maxSurge, set size, max-replicas annotation, and the fraction.
type Fraction = (i32, i32, i32, i32, Option<&'static str>, i32);

#[test]
fn fraction_of_a_set_follows_its_max_replicas_annotation() {
    // Upstream TestGetReplicaSetFraction (maxUnavailable 1): (replicas, status replicas,
    // maxSurge, set size, max-replicas annotation) -> fraction.
    let cases: &[Fraction] = &[
        (0, 0, 0, 10, None, -10),
        (10, 0, 0, 5, None, 0),
        (10, 0, 0, 5, Some("0"), 0),
        (120, 100, 0, 50, None, 10),
        (120, 100, 0, 50, Some("0"), 10),
        (120, 0, 0, 50, Some("100"), 10),
        (120, 0, 10, 50, Some("110"), 9),
        (10, 0, 0, 6, Some("12"), -1),
        (100, 0, 10, 50, Some("130"), -8),
    ];
    for (replicas, status_replicas, surge, size, ann, want) in cases {
        let mut d = rolling(*replicas, Some(int(*surge)), Some(int(1)));
        d.status = Some(DeploymentStatus {
            replicas: Some(*status_replicas),
            ..Default::default()
        });
        let mut set = rs("foo", *size, 1);
        if let Some(a) = ann {
            set = annotated(set, MAX_REPLICAS_ANNOTATION, a);
        }
        assert_eq!(
            rs_fraction(&d, &set),
            *want,
            "replicas {replicas} status {status_replicas} surge {surge} size {size} max {ann:?}"
        );
    }
}

#[test]
fn proportion_is_capped_by_what_is_left_to_add() {
    // Upstream GetReplicaSetProportion: nothing for an empty set or when nothing is left,
    // else the fraction capped by what is left (either sign).
    let d = rolling(20, Some(int(0)), Some(int(1)));
    let set = annotated(rs("foo", 10, 1), MAX_REPLICAS_ANNOTATION, "10");
    assert_eq!(rs_proportion(&d, &set, 10, 0), 10);
    assert_eq!(rs_proportion(&d, &set, 10, 4), 6);
    assert_eq!(rs_proportion(&d, &set, 10, 10), 0);
    assert_eq!(rs_proportion(&d, &set, 0, 0), 0);
    assert_eq!(rs_proportion(&d, &rs("empty", 0, 1), 10, 0), 0);
    let d = rolling(5, Some(int(0)), Some(int(1)));
    assert_eq!(rs_proportion(&d, &set, -5, 0), -5);
    assert_eq!(rs_proportion(&d, &set, -5, -3), -2);
}

#[test]
fn a_negative_max_replicas_annotation_counts_as_missing() {
    // Upstream reads these annotations as non-negative int32s; anything else is as if unset.
    let mut d = rolling(120, Some(int(0)), Some(int(1)));
    d.status = Some(DeploymentStatus {
        replicas: Some(100),
        ..Default::default()
    });
    let set = annotated(rs("foo", 50, 1), MAX_REPLICAS_ANNOTATION, "-100");
    assert_eq!(rs_fraction(&d, &set), 10);
}

/// Creation times of upstream TestScale's sets.
const NEW: i64 = 3;
const OLD: i64 = 2;
const OLDER: i64 = 1;

struct ScaleCase {
    name: &'static str,
    /// Replicas and maxSurge before and after the scaling event.
    before: (i32, i32),
    after: (i32, i32),
    /// (name, size, age); the new set first when there is one.
    new: Option<(&'static str, i32, i64)>,
    old: &'static [(&'static str, i32, i64)],
    /// Sets whose desired-replicas annotation is not `before`'s count.
    desired_override: &'static [(&'static str, i32)],
    want: &'static [(&'static str, i32)],
}

#[test]
fn scaling_during_a_rollout_is_proportional() {
    // Upstream TestScale: each set annotated for the deployment before the event.
    let cases = [
        ScaleCase {
            name: "normal scaling event: 10 -> 12",
            before: (10, 0),
            after: (12, 0),
            new: Some(("foo-v1", 10, NEW)),
            old: &[],
            desired_override: &[],
            want: &[("foo-v1", 12)],
        },
        ScaleCase {
            name: "normal scaling event: 10 -> 5",
            before: (10, 0),
            after: (5, 0),
            new: Some(("foo-v1", 10, NEW)),
            old: &[],
            desired_override: &[],
            want: &[("foo-v1", 5)],
        },
        ScaleCase {
            name: "proportional scaling: 5 -> 10",
            before: (5, 0),
            after: (10, 0),
            new: Some(("foo-v2", 2, NEW)),
            old: &[("foo-v1", 3, OLD)],
            desired_override: &[],
            want: &[("foo-v2", 4), ("foo-v1", 6)],
        },
        ScaleCase {
            name: "proportional scaling: 5 -> 3",
            before: (5, 0),
            after: (3, 0),
            new: Some(("foo-v2", 2, NEW)),
            old: &[("foo-v1", 3, OLD)],
            desired_override: &[],
            want: &[("foo-v2", 1), ("foo-v1", 2)],
        },
        ScaleCase {
            name: "proportional scaling: 9 -> 4",
            before: (9, 0),
            after: (4, 0),
            new: Some(("foo-v2", 8, NEW)),
            old: &[("foo-v1", 1, OLD)],
            desired_override: &[],
            want: &[("foo-v2", 4), ("foo-v1", 0)],
        },
        ScaleCase {
            name: "proportional scaling: 7 -> 10",
            before: (7, 0),
            after: (10, 0),
            new: Some(("foo-v3", 2, NEW)),
            old: &[("foo-v2", 3, OLD), ("foo-v1", 2, OLDER)],
            desired_override: &[],
            want: &[("foo-v3", 3), ("foo-v2", 4), ("foo-v1", 3)],
        },
        ScaleCase {
            name: "proportional scaling: 13 -> 8",
            before: (13, 0),
            after: (8, 0),
            new: Some(("foo-v3", 2, NEW)),
            old: &[("foo-v2", 8, OLD), ("foo-v1", 3, OLDER)],
            desired_override: &[],
            want: &[("foo-v3", 1), ("foo-v2", 5), ("foo-v1", 2)],
        },
        ScaleCase {
            // The leftover goes to the newest of the largest.
            name: "leftover distribution: 3 -> 4",
            before: (3, 0),
            after: (4, 0),
            new: Some(("foo-v3", 1, NEW)),
            old: &[("foo-v2", 1, OLD), ("foo-v1", 1, OLDER)],
            desired_override: &[],
            want: &[("foo-v3", 2), ("foo-v2", 1), ("foo-v1", 1)],
        },
        ScaleCase {
            // The leftover comes off the oldest of the largest.
            name: "leftover distribution: 3 -> 2",
            before: (3, 0),
            after: (2, 0),
            new: Some(("foo-v3", 1, NEW)),
            old: &[("foo-v2", 1, OLD), ("foo-v1", 1, OLDER)],
            desired_override: &[],
            want: &[("foo-v3", 1), ("foo-v2", 1), ("foo-v1", 0)],
        },
        ScaleCase {
            name: "proportional scaling (no new rs): 4 -> 5",
            before: (4, 0),
            after: (5, 0),
            new: None,
            old: &[("foo-v2", 2, OLD), ("foo-v1", 2, OLDER)],
            desired_override: &[],
            want: &[("foo-v2", 3), ("foo-v1", 2)],
        },
        ScaleCase {
            name: "proportional scaling: 6 -> 0",
            before: (6, 0),
            after: (0, 0),
            new: Some(("foo-v3", 3, NEW)),
            old: &[("foo-v2", 2, OLD), ("foo-v1", 1, OLDER)],
            desired_override: &[],
            want: &[("foo-v3", 0), ("foo-v2", 0), ("foo-v1", 0)],
        },
        ScaleCase {
            // Nothing active: the newest set takes the whole count.
            name: "proportional scaling: 0 -> 6",
            before: (6, 0),
            after: (6, 0),
            new: Some(("foo-v3", 0, NEW)),
            old: &[("foo-v2", 0, OLD), ("foo-v1", 0, OLDER)],
            desired_override: &[],
            want: &[("foo-v3", 6), ("foo-v2", 0), ("foo-v1", 0)],
        },
        ScaleCase {
            // foo-v2 was sized for 3 (an update that did not land): its proportion is larger.
            name: "failed rs update",
            before: (5, 0),
            after: (5, 0),
            new: Some(("foo-v3", 2, NEW)),
            old: &[("foo-v2", 1, OLD), ("foo-v1", 1, OLDER)],
            desired_override: &[("foo-v2", 3)],
            want: &[("foo-v3", 2), ("foo-v2", 2), ("foo-v1", 1)],
        },
        ScaleCase {
            name: "deployment with surge pods",
            before: (10, 2),
            after: (20, 2),
            new: Some(("foo-v2", 6, NEW)),
            old: &[("foo-v1", 6, OLD)],
            desired_override: &[],
            want: &[("foo-v2", 11), ("foo-v1", 11)],
        },
        ScaleCase {
            name: "change both surge and size",
            before: (10, 3),
            after: (50, 6),
            new: Some(("foo-v2", 5, NEW)),
            old: &[("foo-v1", 8, OLD)],
            desired_override: &[],
            want: &[("foo-v2", 22), ("foo-v1", 34)],
        },
        ScaleCase {
            name: "change both size and template",
            before: (10, 0),
            after: (14, 0),
            new: None,
            old: &[("foo-v2", 7, NEW), ("foo-v1", 3, OLD)],
            desired_override: &[],
            want: &[("foo-v2", 10), ("foo-v1", 4)],
        },
    ];
    for c in &cases {
        let d = rolling(c.after.0, Some(int(c.after.1)), Some(int(0)));
        let mark = |(name, size, age): (&str, i32, i64)| {
            let mut set = rs(name, size, age);
            let desired = c
                .desired_override
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(c.before.0, |(_, v)| *v);
            set_replicas_annotations(&mut set, desired, desired + c.before.1);
            set
        };
        let new = c.new.map(mark);
        let old: Vec<ReplicaSet> = c.old.iter().copied().map(mark).collect();
        let mut sizes: BTreeMap<String, i32> = new
            .iter()
            .chain(&old)
            .map(|rs| (rs.metadata.name.clone().unwrap(), rs_replicas(rs)))
            .collect();
        for step in scale_plan(&d, new.as_ref(), old.clone()) {
            sizes.insert(step.rs.metadata.name.clone().unwrap(), step.size);
        }
        let want: BTreeMap<String, i32> = c.want.iter().map(|(n, s)| (n.to_string(), *s)).collect();
        assert_eq!(sizes, want, "{}", c.name);
    }
}

#[test]
fn a_saturated_new_set_empties_the_old_ones() {
    // Upstream IsSaturated: desired annotation, size and availability all at the count.
    let d = rolling(2, Some(int(1)), Some(int(1)));
    let mut new = available(rs("foo-v2", 2, 2), 2);
    set_replicas_annotations(&mut new, 2, 3);
    assert!(is_saturated(&d, &new));
    let old = vec![rs("foo-v1", 1, 1)];
    let plan = scale_plan(&d, Some(&new), old.clone());
    let sizes: Vec<(String, i32)> = plan
        .iter()
        .map(|s| (s.rs.metadata.name.clone().unwrap(), s.size))
        .collect();
    assert_eq!(sizes, vec![("foo-v1".to_string(), 0)]);

    // Upstream "saturated but broken new replica set does not affect old pods": a new set
    // with no available pods is not saturated, and with nothing to add nothing changes size.
    let broken = available(new.clone(), 0);
    assert!(!is_saturated(&d, &broken));
    for step in scale_plan(&d, Some(&broken), old) {
        assert_eq!(
            step.size,
            rs_replicas(&step.rs),
            "{:?}",
            step.rs.metadata.name
        );
    }
}
