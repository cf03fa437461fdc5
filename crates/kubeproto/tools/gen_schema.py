#!/usr/bin/env python3
# Copyright reddwarf authors. SPDX-License-Identifier: Apache-2.0
"""Generate crates/kubeproto/schema/k8s.schema.

Inputs (read only, nothing is copied verbatim except identifiers and field
numbers, which are facts from upstream generated.proto):
  * k8s-pb (prost-generated structs): field numbers, wire types, message refs.
  * k8s-openapi: the JSON key spelling of every field, the canonical Go type
    names, which fields are required (non-Option), and (apiVersion, kind) of
    top-level resources.

Usage:
  python3 crates/kubeproto/tools/gen_schema.py [--pb DIR] [--openapi DIR] [--out FILE]

Defaults locate k8s-pb-0.9.0 and k8s-openapi-0.29.0 in ~/.cargo/registry/src.
The output format is described in crates/kubeproto/README.md.
"""

import argparse
import glob
import os
import re
import sys
from collections import OrderedDict, defaultdict

PB_VERSION = "k8s-pb-0.9.0"
OPENAPI_VERSION = "k8s-openapi-0.29.0"

# module path prefix (k8s-pb layout, '/'-separated, without version) -> API group
GROUPS = {
    "api/admission": "admission.k8s.io",
    "api/admissionregistration": "admissionregistration.k8s.io",
    "api/apidiscovery": "apidiscovery.k8s.io",
    "api/apiserverinternal": "internal.apiserver.k8s.io",
    "api/apps": "apps",
    "api/authentication": "authentication.k8s.io",
    "api/authorization": "authorization.k8s.io",
    "api/autoscaling": "autoscaling",
    "api/batch": "batch",
    "api/certificates": "certificates.k8s.io",
    "api/coordination": "coordination.k8s.io",
    "api/core": "",
    "api/discovery": "discovery.k8s.io",
    "api/events": "events.k8s.io",
    "api/extensions": "extensions",
    "api/flowcontrol": "flowcontrol.apiserver.k8s.io",
    "api/imagepolicy": "imagepolicy.k8s.io",
    "api/networking": "networking.k8s.io",
    "api/node": "node.k8s.io",
    "api/policy": "policy",
    "api/rbac": "rbac.authorization.k8s.io",
    "api/resource": "resource.k8s.io",
    "api/scheduling": "scheduling.k8s.io",
    "api/storage": "storage.k8s.io",
    "api/storagemigration": "storagemigration.k8s.io",
    "apiextensions_apiserver/pkg/apis/apiextensions": "apiextensions.k8s.io",
    "kube_aggregator/pkg/apis/apiregistration": "apiregistration.k8s.io",
    "metrics/pkg/apis/metrics": "metrics.k8s.io",
    "metrics/pkg/apis/custom_metrics": "custom.metrics.k8s.io",
    "metrics/pkg/apis/external_metrics": "external.metrics.k8s.io",
    "apimachinery/pkg/apis/meta": "meta.k8s.io",
}
# modules whose messages are never top-level kinds
NO_KINDS = {"apimachinery/pkg/apis/testapigroup"}

# kinds of meta.k8s.io/v1 (registered by metav1.AddToGroupVersion / unversioned types)
META_V1_KINDS = [
    "APIGroup", "APIGroupList", "APIResourceList", "APIVersions", "CreateOptions",
    "DeleteOptions", "GetOptions", "List", "ListOptions", "PartialObjectMetadata",
    "PartialObjectMetadataList", "PatchOptions", "Status", "UpdateOptions", "WatchEvent",
]
# kinds without metadata that clients post
EXTRA_KINDS = {
    ("admission.k8s.io/v1", "AdmissionReview"), ("admission.k8s.io/v1beta1", "AdmissionReview"),
    ("apiextensions.k8s.io/v1", "ConversionReview"), ("apiextensions.k8s.io/v1beta1", "ConversionReview"),
    ("v1", "List"),
}
META_V1BETA1_KINDS = ["PartialObjectMetadataList"]

MAP_PKG = "k8s.io.apimachinery.pkg."
# message full name -> special JSON mapping implemented by hand in src/
SPECIAL = {
    MAP_PKG + "api.resource.Quantity": "quantity",
    MAP_PKG + "apis.meta.v1.Time": "time",
    MAP_PKG + "apis.meta.v1.MicroTime": "microtime",
    MAP_PKG + "apis.meta.v1.Duration": "duration",
    MAP_PKG + "apis.meta.v1.FieldsV1": "fieldsv1",
    MAP_PKG + "util.intstr.IntOrString": "intorstring",
    MAP_PKG + "runtime.RawExtension": "rawextension",
}
for _v in ("v1", "v1beta1"):
    _p = "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions." + _v + "."
    SPECIAL[_p + "JSON"] = "json"
    SPECIAL[_p + "JSONSchemaPropsOrArray"] = "orarray"
    SPECIAL[_p + "JSONSchemaPropsOrBool"] = "orbool"
    SPECIAL[_p + "JSONSchemaPropsOrStringArray"] = "orstringarray"

# Go JSON tags that neither k8s-openapi nor a lowerCamel guess spell right (types absent from OpenAPI)
JSON_OVERRIDES = {
    ("k8s.io.api.core.v1.PodLogOptions", "insecure_skip_tls_verify_backend"): "insecureSkipTLSVerifyBackend",
    ("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.ConversionRequest", "desired_api_version"):
        "desiredAPIVersion",
    ("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1beta1.ConversionRequest", "desired_api_version"):
        "desiredAPIVersion",
    ("k8s.io.apimachinery.pkg.apis.testapigroup.v1.CarpStatus", "carp_ip"): "carpIP",
    # the cross-type dictionary would pick the wrong spelling for these two
    ("k8s.io.api.admission.v1.AdmissionRequest", "sub_resource"): "subResource",
    ("k8s.io.api.admission.v1beta1.AdmissionRequest", "sub_resource"): "subResource",
    ("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1beta1.CustomResourceColumnDefinition", "json_path"):
        "JSONPath",
}

SCALARS = {"string", "int32", "int64", "bool", "double", "bytes"}


def norm(s):
    return re.sub(r"[^a-z0-9]", "", s.lower())


def lower_camel(snake):
    parts = snake.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def find_src(name):
    pats = glob.glob(os.path.expanduser("~/.cargo/registry/src/*/" + name))
    if not pats:
        sys.exit("cannot find %s under ~/.cargo/registry/src (run `cargo fetch` on a crate "
                 "depending on it, or pass the path)" % name)
    return sorted(pats)[-1]


# ---------------------------------------------------------------- k8s-pb

PROST_ATTR = re.compile(r'#\[prost\((.*)\)\]\s*$')
FIELD_DECL = re.compile(r'^\s*pub (r#)?(\w+):\s*(.*)$')


def resolve_rust_path(cur_mod, path):
    """cur_mod: list of module parts; path: rust type path -> (module parts, type name)."""
    path = path.strip()
    segs = [s for s in path.split("::") if s]
    if segs and segs[0] == "crate":
        mod = []
        segs = segs[1:]
    else:
        mod = list(cur_mod)
        while segs and segs[0] == "super":
            mod.pop()
            segs = segs[1:]
    return mod + segs[:-1], segs[-1]


def inner_type(ty):
    """strip Option<..>, Box<..>, Vec<..> wrappers, return innermost path."""
    ty = ty.strip().rstrip(",")
    while True:
        ty = ty.strip().rstrip(",").strip()
        m = re.match(r'^(?:::)?(?:core::option::|prost::alloc::boxed::|prost::alloc::vec::|::core::option::|::prost::alloc::boxed::|::prost::alloc::vec::)?(?:Option|Box|Vec)<(.*)>$', ty)
        if not m:
            return ty
        ty = m.group(1).strip().rstrip(",")


def parse_pb(pb_src):
    """-> OrderedDict modpath(str) -> OrderedDict typename -> list of field dicts"""
    mods = OrderedDict()
    files = sorted(glob.glob(os.path.join(pb_src, "**", "mod.rs"), recursive=True))
    for f in files:
        rel = os.path.relpath(os.path.dirname(f), pb_src)
        modparts = rel.split(os.sep)
        lines = open(f, encoding="utf-8").read().split("\n")
        i = 0
        cur = None
        msgs = OrderedDict()
        pending = None
        while i < len(lines):
            line = lines[i]
            m = re.match(r'^pub struct (\w+) \{\s*$', line)
            if m:
                cur = []
                msgs[m.group(1)] = cur
                i += 1
                continue
            m = re.match(r'^pub struct (\w+) \{\}\s*$', line)
            if m:
                msgs[m.group(1)] = []
                i += 1
                continue
            if cur is not None and line.startswith("}"):
                cur = None
                i += 1
                continue
            if cur is not None:
                m = PROST_ATTR.match(line.strip())
                if m:
                    pending = m.group(1)
                    i += 1
                    continue
                m = FIELD_DECL.match(line)
                if m and pending is not None:
                    decl = m.group(3)
                    while not (decl.rstrip().endswith(",") and decl.count("<") == decl.count(">")):
                        i += 1
                        decl += lines[i].strip()
                    cur.append(parse_field(modparts, pending, m.group(2), decl))
                    pending = None
            elif "#[prost(" in line and "oneof" in line:
                sys.exit("oneof not supported: %s" % f)
            i += 1
        if msgs:
            mods["/".join(modparts)] = msgs
    return mods


def parse_field(modparts, attr, name, decl):
    tag = int(re.search(r'tag\s*=\s*"(\d+)"', attr).group(1))
    fd = {"num": tag, "rust": name, "label": "opt"}
    m = re.match(r'^(b?tree_map|btree_map|hash_map|map)\s*=\s*"(\w+),\s*(\w+)"', attr)
    if m:
        key, val = m.group(2), m.group(3)
        if key != "string":
            sys.exit("non-string map key in %s" % decl)
        fd["label"] = "map"
        if val == "message":
            mm = re.search(r'BTreeMap<[^,]*String,\s*(.*?),?>\s*,?\s*$', decl)
            fd["type"] = ("msg", resolve_rust_path(modparts, mm.group(1)))
        else:
            fd["type"] = ("scalar", val)
        return fd
    kind = re.match(r'^(\w+)', attr).group(1)
    if "repeated" in attr:
        fd["label"] = "rep"
    if kind == "message":
        fd["type"] = ("msg", resolve_rust_path(modparts, inner_type(decl.rstrip().rstrip(","))))
    elif kind in SCALARS:
        fd["type"] = ("scalar", kind)
    else:
        sys.exit("unsupported prost attr %r" % attr)
    return fd


# ---------------------------------------------------------------- k8s-openapi


def parse_openapi(oa_root):
    """-> dict modpath -> dict lower(typename) -> info; and list of (modpath, apiVersion, kind, struct, list_kind)"""
    types = defaultdict(dict)
    resources = []
    vdirs = sorted(glob.glob(os.path.join(oa_root, "src", "v1_*")),
                   key=lambda p: int(p.rsplit("_", 1)[1]), reverse=True)
    for vdir in vdirs:  # newest first; older versions only fill gaps
        for f in sorted(glob.glob(os.path.join(vdir, "**", "*.rs"), recursive=True)):
            text = open(f, encoding="utf-8").read()
            m = re.search(r'^// Generated from definition ([\w.\-]+)', text, re.M)
            if not m:
                continue
            defname = m.group(1)
            sm = re.search(r'^pub (?:struct|enum) (\w+)', text, re.M)
            if not sm:
                continue
            sname = sm.group(1)
            mod = os.path.relpath(os.path.dirname(f), vdir).replace(os.sep, "/")
            key = sname.lower()
            if key not in types[mod]:
                info = {"go": defname.rsplit(".", 1)[1], "keys": {}, "required": set(), "fields": {}}
                for jm in re.finditer(r'"([^"]+)" => Field::Key_(\w+),', text):
                    info["keys"][jm.group(2)] = jm.group(1)
                body = re.search(r'pub struct \w+ \{(.*?)\n\}', text, re.S)
                if body:
                    for fm in re.finditer(r'^    pub (?:r#)?(\w+): (.*),$', body.group(1), re.M):
                        info["fields"][fm.group(1)] = fm.group(2)
                        if not fm.group(2).startswith("Option<"):
                            info["required"].add(fm.group(1))
                types[mod][key] = info
            rm = re.search(r'impl crate::Resource for (\w+) \{.*?API_VERSION: &\'static str = "([^"]*)";'
                           r'.*?KIND: &\'static str = "([^"]*)";', text, re.S)
            if rm:
                lk = re.search(r'LIST_KIND: &\'static str = "([^"]*)"', text)
                resources.append((mod, rm.group(2), rm.group(3), rm.group(1), lk.group(1) if lk else None))
    return types, resources


def pb_resources(pb_src):
    out = []
    for f in sorted(glob.glob(os.path.join(pb_src, "**", "mod.rs"), recursive=True)):
        text = open(f, encoding="utf-8").read()
        mod = os.path.relpath(os.path.dirname(f), pb_src).replace(os.sep, "/")
        for rm in re.finditer(r'impl crate::Resource for (\w+) \{\s*const API_VERSION: &\'static str = "([^"]*)";'
                              r'.*?KIND: &\'static str = "([^"]*)";', text, re.S):
            out.append((mod, rm.group(2), rm.group(3), rm.group(1)))
    return out


# ---------------------------------------------------------------- Go types (optional)


def parse_go(go_root):
    """Go API types from checkouts of kubernetes/{api,apimachinery,apiextensions-apiserver,
    kube-aggregator,metrics} under go_root -> {(module, lower(type)): {field number: info}}"""
    out = {}
    if not go_root:
        return out
    for repo in sorted(os.listdir(go_root)):
        rroot = os.path.join(go_root, repo)
        if not os.path.isdir(rroot):
            continue
        prefix = repo.replace("-", "_")
        for f in sorted(glob.glob(os.path.join(rroot, "**", "*.go"), recursive=True)):
            base = os.path.basename(f)
            if base.endswith("_test.go") or base.startswith("zz_generated") or "generated" in base:
                continue
            mod = prefix + "/" + os.path.relpath(os.path.dirname(f), rroot).replace(os.sep, "/")
            lines = open(f, encoding="utf-8").read().split("\n")
            cur = None
            depth = 0
            for line in lines:
                if cur is None:
                    m = re.match(r'^type (\w+) struct \{\s*$', line)
                    if m:
                        cur = out.setdefault((mod, m.group(1).lower()), {})
                        depth = 1
                    continue
                if line.strip().startswith("//"):
                    continue
                code = line.split("`", 1)[0].split("//", 1)[0]
                depth += code.count("{") - code.count("}")
                if depth <= 0:
                    cur = None
                    continue
                if depth != 1 or "`" not in line or 'protobuf:"' not in line:
                    continue
                decl, tag = line.split("`", 1)[0], line.split("`")[1]
                toks = decl.split()
                pm = re.search(r'protobuf:"([^"]*)"', tag)
                jm = re.search(r'json:"([^"]*)"', tag)
                if not pm or not jm or len(toks) not in (1, 2):
                    continue
                parts = pm.group(1).split(",")
                jparts = jm.group(1).split(",")
                gotype = toks[-1]
                cur[int(parts[1])] = {
                    "json": jparts[0],
                    "omitempty": "omitempty" in jparts[1:],
                    "pointer": gotype.startswith("*"),
                    "embedded": len(toks) == 1,
                    "gotype": gotype,
                }
    return out


# ---------------------------------------------------------------- main


def group_of(mod):
    best = None
    for prefix, g in GROUPS.items():
        if mod.startswith(prefix + "/") and (best is None or len(prefix) > len(best[0])):
            best = (prefix, g)
    return best


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--pb", default=None, help="k8s-pb crate root")
    ap.add_argument("--openapi", default=None, help="k8s-openapi crate root")
    ap.add_argument("--go-root", default=None,
                    help="directory holding checkouts of kubernetes/api, apimachinery, "
                         "apiextensions-apiserver, kube-aggregator, metrics (optional; gives exact "
                         "omitempty/pointer semantics and checks JSON names)")
    ap.add_argument("--go-tag", default="", help="version of the Go sources, recorded in the header")
    ap.add_argument("--out", default=os.path.join(here, "..", "schema", "k8s.schema"))
    args = ap.parse_args()
    pb_root = args.pb or find_src(PB_VERSION)
    oa_root = args.openapi or find_src(OPENAPI_VERSION)

    pb = parse_pb(os.path.join(pb_root, "src"))
    oa_types, oa_res = parse_openapi(oa_root)
    go = parse_go(args.go_root)
    report = defaultdict(list)

    # canonical Go names: openapi definition names, then k8s-pb Resource KIND names
    canon = {}
    for mod, types in oa_types.items():
        for k, info in types.items():
            canon.setdefault(k, info["go"])
    pbres = pb_resources(os.path.join(pb_root, "src"))
    for (_m, _av, kind, _s) in pbres:
        canon.setdefault(kind.lower(), kind)

    def go_name(mod, rust_name):
        info = oa_types.get(mod, {}).get(rust_name.lower())
        if info:
            return info["go"]
        return canon.get(rust_name.lower(), rust_name)

    def pkg_of(mod):
        return "k8s.io." + mod.replace("/", ".")

    # package aliases
    aliases = {}
    used = set()
    for mod in pb:
        parts = mod.split("/")
        n = 2
        while True:
            a = "/".join(parts[-n:])
            if a not in used:
                break
            n += 1
        aliases[mod] = a
        used.add(a)

    # JSON key lookup tables
    by_name = defaultdict(list)  # lower(type) -> [(mod, info)] (other API versions of the same type)
    global_keys = defaultdict(set)  # norm(field) -> {json keys}
    for omod, types in oa_types.items():
        for k, info in types.items():
            by_name[k].append((omod, info))
            for oa_rust, jkey in info["keys"].items():
                global_keys[norm(oa_rust)].add(jkey)
                global_keys[norm(jkey)].add(jkey)

    def match_in(info, rust):
        cands = [(o, j) for o, j in info["keys"].items() if norm(o) == norm(rust) or norm(j) == norm(rust)]
        if len(cands) > 1:
            cands = [c for c in cands if norm(c[1]) == norm(rust)] or cands
        if len(cands) > 1:
            sys.exit("ambiguous json key for %s: %r" % (rust, cands))
        return cands[0] if cands else None

    def resolve_json(mod, rname, rust):
        info = oa_types.get(mod, {}).get(rname.lower())
        if info:
            c = match_in(info, rust)
            if c:
                return c[1], c[0] in info["required"], "exact"
        grp = group_of(mod)
        others = sorted(by_name.get(rname.lower(), []),
                        key=lambda mi: (not (grp and mi[0].startswith(grp[0] + "/")), mi[0]))
        for omod, oinfo in others:
            c = match_in(oinfo, rust)
            if c:
                return c[1], c[0] in oinfo["required"], "same type in " + omod
        keys = global_keys.get(norm(rust), set())
        if len(keys) == 1:
            return next(iter(keys)), False, "global"
        guess = lower_camel(rust)
        if len(keys) > 1:
            pick = guess if guess in keys else sorted(keys)[0]
            return pick, False, "ambiguous %s" % sorted(keys)
        return guess, False, "guess"

    # resolve messages, pass 1: JSON names
    resolved = {}  # (mod, rname) -> list of [fd, json, required, how]
    for mod, msgs in pb.items():
        for rname, fields in msgs.items():
            for fd in fields:
                if fd["type"][0] == "msg":
                    tmod, tname = fd["type"][1]
                    if "/".join(tmod) not in pb or tname not in pb["/".join(tmod)]:
                        sys.exit("unresolved message %s::%s in %s.%s" % ("/".join(tmod), tname, mod, rname))
            resolved[(mod, rname)] = [[fd] + list(resolve_json(mod, rname, fd["rust"])) for fd in fields]

    def known_infos(mod, rname):
        infos = []
        if rname.lower() in oa_types.get(mod, {}):
            infos.append(oa_types[mod][rname.lower()])
        infos += [i for (_m, i) in by_name.get(rname.lower(), []) if i not in infos]
        return infos

    # pass 2: Go embedded structs (`json:",inline"`): a message field that the OpenAPI type of the
    # parent does not know, while the parent knows every JSON key of the embedded message.
    def flat_keys(mod, rname, seen=()):
        out = []
        for fd, json, _r, _h in resolved[(mod, rname)]:
            if json == "~" and (mod, rname) not in seen:
                out += flat_keys("/".join(fd["type"][1][0]), fd["type"][1][1], seen + ((mod, rname),))
            else:
                out.append(json)
        return out

    changed = True
    while changed:
        changed = False
        for (mod, rname), rows in resolved.items():
            infos = known_infos(mod, rname)
            if not infos:
                continue
            for row in rows:
                fd, json, required, how = row
                if (fd["type"][0] != "msg" or fd["label"] != "opt" or how in ("exact", "inline")
                        or how.startswith("same type")):
                    continue
                tmod, tname = fd["type"][1]
                sub = flat_keys("/".join(tmod), tname)
                if sub and all(any(k in i["keys"].values() for i in infos) for k in sub):
                    row[1], row[3] = "~", "inline"
                    changed = True
                    report["inlined embedded struct (json:\",inline\")"].append(
                        "%s.%s.%s" % (mod, rname, fd["rust"]))

    out_pkgs = OrderedDict()
    for mod, msgs in pb.items():
        pkg = pkg_of(mod)
        entries = []
        for rname, fields in msgs.items():
            gname = go_name(mod, rname)
            full = pkg + "." + gname
            info = oa_types.get(mod, {}).get(rname.lower())
            special = SPECIAL.get(full)
            ofields = []
            goinfo = go.get((mod, rname.lower()))
            if go and goinfo is None and not special:
                report["message not found in Go sources"].append(full)
            for fd, json, required, how in resolved[(mod, rname)]:
                rust = fd["rust"]
                if (full, rust) in JSON_OVERRIDES:
                    json, how = JSON_OVERRIDES[(full, rust)], "override"
                    report["json name from override table"].append("%s.%s -> %s" % (full, rust, json))
                gi = (goinfo or {}).get(fd["num"])
                if gi is not None and (gi["json"] == "-" or full.endswith("runtime.Unknown")):
                    gi = None
                if gi is not None:
                    gjson = "~" if gi["embedded"] and gi["json"] == "" else gi["json"]
                    if gjson != json and not special:
                        report["json name taken from Go source (differs)"].append(
                            "%s.%s: %s -> %s" % (full, rust, json, gjson))
                        json, how = gjson, "go"
                elif go and goinfo is not None and not special:
                    report["field not found in Go source"].append("%s.%s" % (full, rust))
                if not special and how == "guess":
                    report["json name guessed (lowerCamel of the prost name)"].append(
                        "%s.%s -> %s" % (full, rust, json))
                elif not special and how.startswith("ambiguous"):
                    report["json name chosen among several spellings"].append(
                        "%s.%s -> %s %s" % (full, rust, json, how))
                kind, t = fd["type"]
                if kind == "scalar":
                    tstr = t
                else:
                    tmod_s = "/".join(t[0])
                    tg = go_name(tmod_s, t[1])
                    tstr = tg if tmod_s == mod else aliases[tmod_s] + "." + tg
                if fd["label"] == "rep":
                    tstr = "[]" + tstr
                elif fd["label"] == "map":
                    tstr = "{}" + tstr
                # '?': Go non-pointer field with omitempty; its zero value means "unset" and is
                # omitted when decoding. Go marshals every non-pointer field, so the wire has it.
                if kind == "scalar" and fd["label"] == "opt":
                    if gi is not None:
                        omit_zero = gi["omitempty"] and not gi["pointer"]
                    else:
                        omit_zero = t in ("string", "bytes") and not required
                    if omit_zero:
                        tstr += "?"
                ofields.append((fd["num"], json, tstr))
            if info is None and not special:
                report["message not in k8s-openapi (names from other versions/k8s-pb)"].append(full)
            # string-slice aliases (Go `type X []string`): message with only `repeated string items = 1`,
            # unknown to OpenAPI (inlined there as an array)
            if (special is None and info is None and len(fields) == 1
                    and fields[0]["rust"] == "items" and fields[0]["label"] == "rep"
                    and fields[0]["type"] == ("scalar", "string")):
                special = "strings"
                report["string-slice wrapper messages (=strings)"].append(full)
            jsons = [f[1] for f in ofields if f[1] != "~"]
            if len(set(jsons)) != len(jsons):
                sys.exit("duplicate json names in %s: %r" % (full, jsons))
            entries.append((gname, special, sorted(ofields)))
        out_pkgs[mod] = entries

    # kinds
    kinds = OrderedDict()  # (apiVersion, kind) -> (mod, msgname)

    def add_kind(mod, av, kind, msg, src):
        key = (av, kind)
        if key in kinds:
            return
        names = {e[0] for e in out_pkgs.get(mod, [])}
        if msg not in names:
            report["kind without message (skipped)"].append("%s %s (%s)" % (av, kind, src))
            return
        kinds[key] = (mod, msg)

    pb_mod_names = {mod: {e[0] for e in ents} for mod, ents in out_pkgs.items()}
    for (mod, av, kind, sname, lk) in oa_res:
        if mod not in pb:
            continue
        gv = group_of(mod)
        exp = (gv[1] + "/" if gv and gv[1] else "") + mod.rsplit("/", 1)[1]
        if av != exp and not mod.startswith("apimachinery/"):  # discovery/Status types use "v1"
            sys.exit("group mismatch for %s: openapi says %s, table says %s" % (mod, av, exp))
        add_kind(mod, av, kind, go_name(mod, sname), "k8s-openapi")
        if lk:
            add_kind(mod, av, lk, go_name(mod, lk), "k8s-openapi")
    for (mod, av, kind, sname) in pbres:
        gv = group_of(mod)
        exp = (gv[1] + "/" if gv and gv[1] else "") + mod.rsplit("/", 1)[1]
        if av != exp:
            sys.exit("group mismatch for %s: k8s-pb says %s, table says %s" % (mod, av, exp))
        add_kind(mod, av, kind, go_name(mod, sname), "k8s-pb")
        if kind + "List" in pb_mod_names[mod]:
            add_kind(mod, av, kind + "List", kind + "List", "k8s-pb")
    # heuristic for API versions neither crate marks: `metadata` (ObjectMeta) at field 1 and not a
    # template/spec, or `metadata` (ListMeta) at field 1 and a name ending in List
    for mod, ents in out_pkgs.items():
        gv = group_of(mod)
        if gv is None:
            if not mod.startswith("apimachinery/"):
                report["module without group"].append(mod)
            continue
        if any(mod.startswith(p) for p in NO_KINDS) or gv[1] == "meta.k8s.io":
            continue
        av = (gv[1] + "/" if gv[1] else "") + mod.rsplit("/", 1)[1]
        for (name, special, fields) in ents:
            md = [f for f in fields if f[0] == 1 and f[1] == "metadata"]
            if (av, name) in kinds:
                continue
            if (md and md[0][2].endswith("ObjectMeta") and not name.endswith(("Spec", "Template"))) or \
               (md and md[0][2].endswith("ListMeta") and name.endswith("List")) or \
               (av, name) in EXTRA_KINDS or (av == "v1" and re.match(r"^(Pod|Node|Service)\w*Options$", name)):
                add_kind(mod, av, name, name, "heuristic")
                report["kind by heuristic (no Resource impl in either crate)"].append("%s %s" % (av, name))
            elif md:
                report["metadata-bearing message not made a kind"].append("%s %s" % (av, name))
    for k in META_V1_KINDS:
        add_kind("apimachinery/pkg/apis/meta/v1", "meta.k8s.io/v1", k, k, "meta")
    for k in META_V1BETA1_KINDS:
        add_kind("apimachinery/pkg/apis/meta/v1beta1", "meta.k8s.io/v1beta1", k, k, "meta")

    # write
    kinds_by_mod = defaultdict(list)
    for (av, kind), (mod, msg) in kinds.items():
        kinds_by_mod[mod].append((av, kind, msg))
    lines = [
        "# reddwarf-kubeproto schema v1. GENERATED by tools/gen_schema.py from %s and %s%s; do not edit."
        % (PB_VERSION, OPENAPI_VERSION, " (+ Go types %s)" % args.go_tag if args.go_root else ""),
        "# P <alias> <proto package> | K <apiVersion> <Kind> [<Message>] | M <Message> [=special]",
        "# field: <number> <jsonName> <type>; type: scalar|Msg|alias.Msg, prefix [] repeated, {} map<string,_>,",
        "# suffix ? = Go non-pointer omitempty scalar: a zero value on the wire is omitted from JSON.",
    ]
    for mod, ents in out_pkgs.items():
        lines.append("P %s %s" % (aliases[mod], pkg_of(mod)))
        for (av, kind, msg) in sorted(kinds_by_mod.get(mod, [])):
            lines.append("K %s %s" % (av, kind) + ("" if msg == kind else " " + msg))
        for (name, special, fields) in ents:
            lines.append("M %s%s" % (name, " =" + special if special else ""))
            for (num, json, t) in fields:
                lines.append("%d %s %s" % (num, json, t))
    data = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write(data)
    nmsg = sum(len(e) for e in out_pkgs.values())
    nfld = sum(len(x[2]) for e in out_pkgs.values() for x in e)
    print("wrote %s: %d bytes, %d packages, %d messages, %d fields, %d kinds"
          % (args.out, len(data), len(out_pkgs), nmsg, nfld, len(kinds)), file=sys.stderr)
    for k, v in report.items():
        v = list(OrderedDict.fromkeys(v))
        print("%s: %d" % (k, len(v)), file=sys.stderr)
        for x in v:
            print("    " + x, file=sys.stderr)


if __name__ == "__main__":
    main()
