// Validates deploy/kubernetes against the Kubernetes API schema (kubernetes-models, generated from the
// OpenAPI spec; the ServiceMonitor against the Prometheus Operator's CRD schema). Every kustomization
// (the base and each overlay) is rendered the way kustomize would for the features it uses (resources,
// nameSuffix, labels, configMapGenerator with behavior replace, JSON 6902 "add" patches; anything else is
// refused) and every resulting object is validated. Prints one line per object; exits 1 on the first
// invalid one. Also writes the pipeline files of the ConfigMaps to OUT_DIR for `xdp-pipeline check`.
//   node validate_manifests.mjs DEPLOY_KUBERNETES_DIR OUT_DIR
import fs from "node:fs";
import path from "node:path";
import { parseAllDocuments } from "yaml";

const [root, outDir] = process.argv.slice(2);
if (!root || !outDir) {
  console.error("usage: validate_manifests.mjs DEPLOY_KUBERNETES_DIR OUT_DIR");
  process.exit(2);
}

const models = {
  "v1/Namespace": "kubernetes-models/v1/Namespace",
  "v1/ConfigMap": "kubernetes-models/v1/ConfigMap",
  "v1/Service": "kubernetes-models/v1/Service",
  "apps/v1/DaemonSet": "kubernetes-models/apps/v1/DaemonSet",
  "monitoring.coreos.com/v1/ServiceMonitor": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor",
};

async function validate(object, where) {
  const key = `${object.apiVersion}/${object.kind}`;
  if (!models[key]) throw new Error(`${where}: no schema for ${key}`);
  const module = await import(models[key]);
  const Model = module[object.kind] ?? module.default;
  new Model(object).validate(); // throws with the failing path
}

function readYaml(file) {
  return parseAllDocuments(fs.readFileSync(file, "utf8")).map((doc) => {
    if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0].message}`);
    return doc.toJS();
  });
}

function render(dir) {
  const k = readYaml(path.join(dir, "kustomization.yaml"))[0];
  const known = new Set(["apiVersion", "kind", "resources", "nameSuffix", "labels", "configMapGenerator", "generatorOptions", "patches"]);
  for (const field of Object.keys(k)) if (!known.has(field)) throw new Error(`${dir}: kustomization field '${field}' is not rendered by this test`);
  let objects = [];
  for (const resource of k.resources ?? []) {
    const target = path.join(dir, resource);
    objects.push(...(fs.statSync(target).isDirectory() ? render(target) : readYaml(target)));
  }
  for (const generator of k.configMapGenerator ?? []) {
    const data = {};
    for (const file of generator.files) data[path.basename(file)] = fs.readFileSync(path.join(dir, file), "utf8");
    const made = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: generator.name, namespace: generator.namespace }, data };
    const existing = objects.findIndex((o) => o.kind === "ConfigMap" && o.metadata.name === generator.name);
    if (generator.behavior === "replace") {
      if (existing < 0) throw new Error(`${dir}: configMapGenerator replaces '${generator.name}', which the base lacks`);
      objects[existing] = made;
    } else {
      objects.push(made);
    }
  }
  for (const patch of k.patches ?? []) {
    const ops = readYaml_inline(patch.patch);
    for (const o of objects.filter((o) => o.kind === patch.target.kind && o.metadata.name === patch.target.name)) {
      for (const op of ops) {
        if (op.op !== "add") throw new Error(`${dir}: patch op '${op.op}' is not rendered by this test`);
        const keys = op.path.split("/").slice(1);
        let at = o;
        for (const key of keys.slice(0, -1)) at = at[key] ??= {};
        at[keys.at(-1)] = op.value;
      }
    }
  }
  for (const pairs of k.labels ?? []) {
    for (const o of objects) {
      o.metadata.labels = { ...o.metadata.labels, ...pairs.pairs };
      if (pairs.includeSelectors && o.spec?.selector?.matchLabels) Object.assign(o.spec.selector.matchLabels, pairs.pairs);
      if (pairs.includeSelectors && o.kind === "DaemonSet") Object.assign(o.spec.template.metadata.labels, pairs.pairs);
      if (pairs.includeSelectors && o.kind === "Service") Object.assign(o.spec.selector, pairs.pairs);
    }
  }
  if (k.nameSuffix) {
    for (const o of objects) {
      if (o.kind === "ConfigMap") {
        for (const d of objects.filter((d) => d.kind === "DaemonSet"))
          for (const v of d.spec.template.spec.volumes) if (v.configMap?.name === o.metadata.name) v.configMap.name += k.nameSuffix;
      }
      o.metadata.name += k.nameSuffix;
    }
  }
  return objects;
}
function readYaml_inline(text) {
  return parseAllDocuments(text)[0].toJS();
}

let failed = false;
fs.mkdirSync(outDir, { recursive: true });
const dirs = [path.join(root, "base"), ...fs.readdirSync(path.join(root, "overlays")).map((d) => path.join(root, "overlays", d))];
for (const object of readYaml(path.join(root, "namespace.yaml"))) {
  await validate(object, "namespace.yaml");
  console.log(`ok namespace.yaml ${object.kind}/${object.metadata.name}`);
}
for (const dir of dirs) {
  const name = path.relative(root, dir);
  let objects;
  try {
    objects = render(dir);
  } catch (error) {
    console.log(`FAIL ${name}: ${error.message}`);
    failed = true;
    continue;
  }
  for (const object of objects) {
    try {
      await validate(object, name);
      console.log(`ok ${name} ${object.kind}/${object.metadata.name}`);
    } catch (error) {
      console.log(`FAIL ${name} ${object.kind}/${object.metadata?.name}: ${error.message}`);
      failed = true;
    }
    if (object.kind === "ConfigMap")
      for (const [file, text] of Object.entries(object.data ?? {}))
        fs.writeFileSync(path.join(outDir, `${name.replaceAll("/", "_")}__${file}`), text);
  }
}
process.exit(failed ? 1 : 0);
