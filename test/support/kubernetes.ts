/** The shipped Kubernetes manifests (contrib/kubernetes/), parsed as kubectl reads them. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { REPO } from "./lab.ts";

export const MANIFESTS = join(REPO, "contrib", "kubernetes");

// deno-lint-ignore no-explicit-any
export type KubernetesObject = Record<string, any>;

/** Every object of a manifest file, in order; throws on a YAML error. */
export function readManifest(file: string): KubernetesObject[] {
  return parseAllDocuments(readFileSync(join(MANIFESTS, file), "utf8")).map((document) => {
    if (document.errors.length) throw new Error(`${file}: ${document.errors[0].message}`);
    return document.toJS();
  }).filter((object) => object !== null);
}

/** The one object of `kind` in `objects`. */
export function only(objects: KubernetesObject[], kind: string): KubernetesObject {
  const found = objects.filter((object) => object.kind === kind);
  if (found.length !== 1) throw new Error(`${found.length} objects of kind ${kind}, not 1`);
  return found[0];
}

/** The container named `name` of a Deployment's or DaemonSet's pod template. */
export function container(workload: KubernetesObject, name: string): KubernetesObject {
  const found = workload.spec.template.spec.containers.find((candidate: KubernetesObject) =>
    candidate.name === name
  );
  if (!found) throw new Error(`no container ${name} in ${workload.metadata.name}`);
  return found;
}

/** The value of `--NAME=VALUE` in a container's args. */
export function argument(of: KubernetesObject, name: string): string | undefined {
  const prefix = `--${name}=`;
  return (of.args as string[]).find((arg) => arg.startsWith(prefix))?.slice(prefix.length);
}
