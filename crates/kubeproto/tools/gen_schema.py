#!/usr/bin/env python3
# Copyright reddwarf authors. SPDX-License-Identifier: Apache-2.0
"""Generate crates/kubeproto/schema/k8s.schema and schema/k8s.docs.

Inputs (read only, nothing is copied verbatim except identifiers, field
numbers and upstream's descriptions, which are facts of the upstream API):
  * k8s-pb (prost-generated structs): field numbers, wire types, message refs,
    and the Go comments of generated.proto with upstream's markers
    (+patchStrategy, +patchMergeKey, +listType, +listMapKey, +mapType,
    +structType, +optional, +required).
  * k8s-openapi: the JSON key spelling of every field, the canonical Go type
    names, which fields are required, (apiVersion, kind) of top-level
    resources, and upstream's OpenAPI descriptions (its schemars impls).
  * optionally (--go-root) the Go API sources: exact omitempty/pointer data,
    JSON names, struct tags (patchStrategy/patchMergeKey) and required fields.

Usage:
  python3 crates/kubeproto/tools/gen_schema.py [--pb DIR] [--openapi DIR] [--out FILE]
      [--docs-out FILE] [--go-root DIR --go-tag TAG]

Defaults locate k8s-pb-0.9.0 and k8s-openapi-0.29.0 in ~/.cargo/registry/src.
The output format is described in crates/kubeproto/README.md.
"""

import argparse
import hashlib
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
        doc = []  # `///` lines above the next struct or field
        while i < len(lines):
            line = lines[i]
            dm = DOC_LINE.match(line)
            if dm:
                doc.append(dm.group(1))
                i += 1
                continue
            m = re.match(r'^pub struct (\w+) \{\s*$', line)
            if m:
                cur = []
                msgs[m.group(1)] = cur
                MSG_DOCS[("/".join(modparts), m.group(1))] = doc
                doc = []
                i += 1
                continue
            m = re.match(r'^pub struct (\w+) \{\}\s*$', line)
            if m:
                msgs[m.group(1)] = []
                MSG_DOCS[("/".join(modparts), m.group(1))] = doc
                doc = []
                i += 1
                continue
            if cur is not None and line.startswith("}"):
                cur = None
                doc = []
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
                    fd = parse_field(modparts, pending, m.group(2), decl)
                    fd["doc"] = doc
                    cur.append(fd)
                    pending = None
                    doc = []
            elif "#[prost(" in line and "oneof" in line:
                sys.exit("oneof not supported: %s" % f)
            elif not line.startswith("#["):
                doc = []
            i += 1
        if msgs:
            mods["/".join(modparts)] = msgs
    return mods


# doc comment lines of k8s-pb (the Go comments of generated.proto, markers included)
DOC_LINE = re.compile(r'^\s*///\s?(.*)$')
MSG_DOCS = {}  # (module, prost struct name) -> doc lines
MARKER = re.compile(r'^\+([A-Za-z][\w.:-]*)(?:=(.*))?$')


def markers(doc):
    """Upstream's Go comment markers on a field or type -> {name: [values]}."""
    out = defaultdict(list)
    for line in doc:
        m = MARKER.match(line.strip())
        if m:
            out[m.group(1)].append((m.group(2) or "").strip())
    return out


def doc_text(doc):
    """Go comment lines -> description the way upstream's openapi-gen writes it: marker lines and
    TODOs dropped, lines of a paragraph joined with spaces, paragraphs separated by a blank line,
    indented lines kept on their own line. prost's <URL> autolinks are undone."""
    paras, cur = [], []
    for raw in doc:
        line = raw.rstrip()
        if MARKER.match(line.strip()) or line.strip().startswith("TODO") or line.strip() == "---":
            continue
        line = re.sub(r'<(https?://[^>\s]+)>', r'\1', line)
        if not line.strip():
            if cur:
                paras.append(cur)
                cur = []
            continue
        cur.append(line)
    if cur:
        paras.append(cur)
    out = []
    for p in paras:
        text = ""
        for line in p:
            if line.startswith((" ", "\t")):
                text += ("\n" if text else "") + line
            else:
                text += (" " if text and not text.endswith("\n") else "") + line.strip()
        out.append(text)
    return "\n\n".join(out)


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


RUST_STR = r'"((?:[^"\\]|\\.)*)"'


def rust_unescape(lit):
    out, i = [], 0
    while i < len(lit):
        c = lit[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        n = lit[i + 1]
        if n == "u":
            j = lit.index("}", i)
            out.append(chr(int(lit[i + 3:j], 16)))
            i = j + 1
            continue
        out.append({"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}[n])
        i += 2
    return "".join(out)


def parse_openapi_docs(oa_root):
    """schemars impls of k8s-openapi -> {version dir: {module: {lower(type): info}}}, info = {"def":
    definition name, "desc": type description, "props": {json key: description}, "required": [...]}.
    These are upstream's OpenAPI descriptions (the Go comments as openapi-gen renders them)."""
    out = {}
    for vdir in sorted(glob.glob(os.path.join(oa_root, "src", "v1_*"))):
        per = defaultdict(dict)
        for f in sorted(glob.glob(os.path.join(vdir, "**", "*.rs"), recursive=True)):
            text = open(f, encoding="utf-8").read()
            m = re.search(r'^// Generated from definition ([\w.\-]+)', text, re.M)
            sm = re.search(r'^pub (?:struct|enum) (\w+)', text, re.M)
            js = text.find("fn json_schema(")
            if not m or not sm or js < 0:
                continue
            body = text[js:].split("\n")
            info = {"def": m.group(1), "desc": None, "props": OrderedDict(), "required": []}
            prop = None
            in_req = False
            for line in body:
                dm = re.match(r'^ {12}"description": ' + RUST_STR + r',$', line)
                if dm:
                    info["desc"] = rust_unescape(dm.group(1))
                    continue
                pm = re.match(r'^ {16}"([^"]+)": [({]', line)
                if pm and not in_req:
                    prop = pm.group(1)
                    info["props"][prop] = None
                    continue
                if re.match(r'^ {12}"required": \[', line):
                    in_req = True
                    continue
                if in_req:
                    rm = re.match(r'^ {16}"([^"]+)",$', line)
                    if rm:
                        info["required"].append(rm.group(1))
                    else:
                        in_req = False
                    continue
                if prop is not None and info["props"][prop] is None:
                    dm = re.match(r'^ {20}"description": ' + RUST_STR + r',$', line) or \
                        re.match(r'^ {20}schema_obj\.ensure_object\(\)\.insert\("description"\.into\(\), ' +
                                 RUST_STR + r'\.into\(\)\);$', line)
                    if dm:
                        info["props"][prop] = rust_unescape(dm.group(1))
                if re.match(r'^ {8}\}\)$', line):
                    break
            mod = os.path.relpath(os.path.dirname(f), vdir).replace(os.sep, "/")
            per[mod][sm.group(1).lower()] = info
        out[os.path.basename(vdir)] = per
    return out


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


GO_STRUCTS = {}  # (module, lower(type)) -> {"tm": position of an embedded TypeMeta or None}


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
                        skey = (mod, m.group(1).lower())
                        cur = out.setdefault(skey, {})
                        GO_STRUCTS[skey] = {"tm": None}
                        seq = 0  # Go declaration order of the struct's fields
                        depth = 1
                    continue
                if line.strip().startswith("//"):
                    continue
                code = line.split("`", 1)[0].split("//", 1)[0]
                depth += code.count("{") - code.count("}")
                if depth <= 0:
                    cur = None
                    continue
                if depth != 1 or not code.strip():
                    continue
                seq += 1
                decl = line.split("`", 1)[0]
                toks = decl.split()
                if len(toks) == 1 and toks[0].split(".")[-1] == "TypeMeta":
                    GO_STRUCTS[skey]["tm"] = seq
                if "`" not in line or 'protobuf:"' not in line:
                    continue
                tag = line.split("`")[1]
                pm = re.search(r'protobuf:"([^"]*)"', tag)
                jm = re.search(r'json:"([^"]*)"', tag)
                if not pm or not jm or len(toks) not in (1, 2):
                    continue
                parts = pm.group(1).split(",")
                jparts = jm.group(1).split(",")
                gotype = toks[-1]
                psm = re.search(r'patchStrategy:"([^"]*)"', tag)
                pkm = re.search(r'patchMergeKey:"([^"]*)"', tag)
                cur[int(parts[1])] = {
                    "ps": psm.group(1) if psm else None,
                    "pk": pkm.group(1) if pkm else None,
                    "json": jparts[0],
                    "omitempty": "omitempty" in jparts[1:],
                    "pointer": gotype.startswith("*"),
                    "embedded": len(toks) == 1,
                    "gotype": gotype,
                    "pos": seq,
                }
    return out


# ---------------------------------------------------------------- main


def group_of(mod):
    best = None
    for prefix, g in GROUPS.items():
        if mod.startswith(prefix + "/") and (best is None or len(prefix) > len(best[0])):
            best = (prefix, g)
    return best


def with_digest(data):
    """Put a digest of the content after the first line into the first line (clients cache OpenAPI
    documents by a hash that includes it)."""
    head, rest = data.split("\n", 1)
    return "%s digest=%s\n%s" % (head, hashlib.sha256(rest.encode("utf-8")).hexdigest()[:16], rest)


def esc(text):
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "")


def annotate(oa_root, pb, by_rust, kinds, go, report):
    """Markers, required flags, TypeMeta flags and descriptions.
    -> (message full name -> [flag tokens], (message, field number) -> [tokens], docs lines)"""
    oa_docs = parse_openapi_docs(oa_root)
    versions = sorted(oa_docs, key=lambda v: int(v.rsplit("_", 1)[1]), reverse=True)

    def type_of(fd):
        return ("/".join(fd["type"][1][0]), fd["type"][1][1])

    def flat(key, seen=()):
        """JSON keys of a message with inlined (embedded) messages flattened in."""
        full, special, fields = by_rust[key]
        out = []
        for (_num, json, _t, fd) in fields:
            if json == "~":
                if key not in seen:
                    out += flat(type_of(fd), seen + (key,))
            else:
                out.append(json)
        return out

    # the k8s-openapi version k8s-pb was generated from: the one whose property sets match the most
    # messages exactly. Descriptions come from it; other versions (newest first) fill gaps.
    def score(v):
        n = 0
        for (mod, rname) in by_rust:
            info = oa_docs[v].get(mod, {}).get(rname.lower())
            if info and set(flat((mod, rname))) == set(info["props"]) - {"apiVersion", "kind"}:
                n += 1
        return n
    ref = max(versions, key=lambda v: (score(v), int(v.rsplit("_", 1)[1])))
    order = [ref] + [v for v in versions if v != ref]
    report["descriptions from k8s-openapi (best matching version first)"].append(" ".join(order))

    def oa(key):
        mod, rname = key
        for v in order:
            info = oa_docs[v].get(mod, {}).get(rname.lower())
            if info:
                return info
        return None

    kind_msgs = {by_rust_key for by_rust_key in by_rust
                 if any((m, n) == (by_rust_key[0], by_rust[by_rust_key][0].rsplit(".", 1)[1])
                        for (m, n) in kinds.values())}

    # the standard apiVersion/kind texts for kinds k8s-openapi does not know
    std = defaultdict(lambda: defaultdict(int))
    for v in oa_docs.values():
        for types in v.values():
            for info in types.values():
                for k in ("apiVersion", "kind"):
                    if info["props"].get(k):
                        std[k][info["props"][k]] += 1
    std = {k: max(c, key=c.get) for k, c in std.items()}

    # required keys of inlined messages unknown to OpenAPI come from the parents' lists
    inline_req = defaultdict(set)
    for key, (full, special, fields) in by_rust.items():
        info = oa(key)
        for (_num, json, _t, fd) in fields:
            if json == "~" and info and oa(type_of(fd)) is None:
                inline_req[type_of(fd)] |= set(info["required"])

    msg_extra, field_extra, docs = {}, {}, []
    for key, (full, special, fields) in by_rust.items():
        info = oa(key)
        mk = markers(MSG_DOCS.get(key, []))
        flags = []
        if "atomic" in mk.get("structType", []):
            flags.append("atomic")
        keys = flat(key)
        if special is None and "apiVersion" not in keys and (
                (info and "apiVersion" in info["props"] and "kind" in info["props"])
                or (info is None and key in kind_msgs)):
            flags.append("tm")
        msg_extra[full] = flags
        desc = (info or {}).get("desc")
        if desc is None:
            desc = doc_text(MSG_DOCS.get(key, []))
            if desc:
                report["description from k8s-pb comments (type not in k8s-openapi)"].append(full)
        docs.append("M %s %s" % (full, esc(desc or "")))
        fdocs = OrderedDict()
        if "tm" in flags:
            for k in ("apiVersion", "kind"):
                fdocs[k] = ((info or {}).get("props", {}).get(k)) or std[k]
        required = set(info["required"]) if info else set()
        alt = None
        if info is None:
            grp = group_of(key[0])
            for v in order:
                for omod, types in sorted(oa_docs[v].items()):
                    if grp and omod.startswith(grp[0] + "/") and key[1].lower() in types:
                        alt = alt or types[key[1].lower()]
        gofields = go.get((key[0], key[1].lower()), {})
        for (num, json, _t, fd) in fields:
            if json == "~":
                continue
            m = markers(fd.get("doc", []))
            toks = []
            ps, pk = (m.get("patchStrategy") or [None])[0], (m.get("patchMergeKey") or [None])[0]
            gi = gofields.get(num)
            if gi is not None and (gi.get("ps"), gi.get("pk")) != (ps, pk):
                report["patch strategy/merge key: Go struct tag differs from comment marker (tag used)"].append(
                    "%s.%s: marker %s/%s, tag %s/%s" % (full, json, ps, pk, gi.get("ps"), gi.get("pk")))
                ps, pk = gi.get("ps"), gi.get("pk")
            if ps:
                toks.append("ps=" + ps)
            if pk:
                toks.append("pk=" + pk)
            if m.get("listType"):
                toks.append("lt=" + m["listType"][0])
            if m.get("listMapKey"):
                toks.append("lk=" + ",".join(m["listMapKey"]))
            mt = (m.get("mapType") or m.get("structType") or [None])[0]
            if mt:
                toks.append("mt=" + mt)
            marked = "required" in m or "k8s:required" in m
            if gi is not None and gi["json"] == json:
                # upstream's generator: required unless `omitempty` or `+optional`, or `+required`
                req = (not gi["omitempty"] and "optional" not in m) or marked
                if info is not None and req != (json in required):
                    report["required: from Go tags, k8s-openapi differs"].append(
                        "%s.%s: %s (k8s-openapi %s)" % (full, json, req, json in required))
            elif info is not None:
                # k8s-openapi makes `metadata` of every resource required; upstream does not
                req = (json in required and not (
                    json == "metadata" and _t.endswith(("ObjectMeta", "ListMeta")))) or marked
            elif json in inline_req.get(key, ()):
                req = True
            elif alt is not None:
                # a version k8s-openapi lacks: the same type of another version of the group
                req = (json in alt["required"] and not (
                    json == "metadata" and _t.endswith(("ObjectMeta", "ListMeta")))) or marked
            else:
                # list kinds are generic in k8s-openapi; upstream's `Items []T` has no omitempty
                req = marked or (json == "items" and fd["label"] == "rep" and key[1].endswith("List"))
            if req:
                toks.append("!")
            if toks:
                field_extra[(full, num)] = toks
            d = (info or {}).get("props", {}).get(json)
            if d is None and (info is None or json not in info["props"]):
                d = doc_text(fd.get("doc", []))
            if d:
                fdocs[json] = d
        # descriptions of keys of inlined messages as the parent's OpenAPI type words them
        for k in keys:
            if k not in fdocs and info and info["props"].get(k):
                fdocs[k] = info["props"][k]
        for k, d in fdocs.items():
            docs.append("F %s %s" % (k, esc(d)))
    # request-body types that have no protobuf message
    for v in order:
        pinfo = oa_docs[v].get("apimachinery/pkg/apis/meta/v1", {}).get("patch")
        if pinfo:
            docs.append("M k8s.io.apimachinery.pkg.apis.meta.v1.Patch %s" % esc(pinfo["desc"]))
            break
    return msg_extra, field_extra, docs


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
    ap.add_argument("--docs-out", default=None,
                    help="descriptions file (default: k8s.docs beside --out)")
    args = ap.parse_args()
    docs_out = args.docs_out or os.path.join(os.path.dirname(os.path.abspath(args.out)), "k8s.docs")
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
    by_rust = {}  # (module, prost name) -> (full name, special, fields)
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
            go_pos = {}  # field number -> position in the Go struct declaration
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
                    go_pos[fd["num"]] = gi["pos"]
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
                ofields.append((fd["num"], json, tstr, fd))
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
            ofields.sort(key=lambda f: f[0])
            by_rust[(mod, rname)] = (full, special, ofields)
            # The file lists fields in Go declaration order (the order Go's encoding/json writes
            # them; field numbers do not follow it: later additions sit mid-struct). Fields the
            # Go sources lack keep number order after the others.
            if go_pos and not special:
                gofields = sorted(ofields, key=lambda f: (f[0] not in go_pos, go_pos.get(f[0], 0), f[0]))
                if [f[0] for f in gofields] != [f[0] for f in ofields]:
                    report["fields listed in Go order (differs from number order)"].append(full)
                tm = GO_STRUCTS.get((mod, rname.lower()), {}).get("tm")
                if tm is not None and any(p < tm for p in go_pos.values()):
                    report["TypeMeta not the first Go field (kind/apiVersion still written first)"].append(full)
                ofields = gofields
            elif not special and ofields:
                report["fields in number order (no Go struct)"].append(full)
            entries.append((gname, special, ofields))
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

    # markers, required, TypeMeta, descriptions
    msg_extra, field_extra, docs = annotate(oa_root, pb, by_rust, kinds, go, report)

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
        "# message flags: atomic (+structType=atomic), tm (has apiVersion/kind: Go embeds TypeMeta).",
        "# field tokens after the type: ps=<patchStrategy> pk=<patchMergeKey> lt=<listType>",
        "#   lk=<listMapKey,...> mt=<mapType or field-level structType>, ! = required in upstream OpenAPI.",
        "# fields are listed in Go declaration order (Go's JSON order); protobuf writes them in number order.",
    ]
    for mod, ents in out_pkgs.items():
        lines.append("P %s %s" % (aliases[mod], pkg_of(mod)))
        for (av, kind, msg) in sorted(kinds_by_mod.get(mod, [])):
            lines.append("K %s %s" % (av, kind) + ("" if msg == kind else " " + msg))
        for (name, special, fields) in ents:
            full = pkg_of(mod) + "." + name
            lines.append("M %s%s" % (name, "".join(" " + t for t in
                                                    ([("=" + special)] if special else []) + msg_extra.get(full, []))))
            for (num, json, t, _fd) in fields:
                lines.append(" ".join(["%d %s %s" % (num, json, t)] + field_extra.get((full, num), [])))
    data = "\n".join(lines) + "\n"
    data = with_digest(data)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write(data)
    ddata = with_digest("\n".join([
        "# reddwarf-kubeproto docs v1. GENERATED by tools/gen_schema.py from %s and %s; do not edit."
        % (PB_VERSION, OPENAPI_VERSION),
        "# M <proto message> <description> | F <jsonName> <description> (of the message above);",
        "# descriptions escape backslash and newline as \\\\ and \\n.",
    ] + docs) + "\n")
    with open(docs_out, "w", encoding="utf-8") as fh:
        fh.write(ddata)
    print("wrote %s: %d bytes" % (docs_out, len(ddata)), file=sys.stderr)
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
