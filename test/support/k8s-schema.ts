// Validates rendered Kubernetes objects against the Kubernetes OpenAPI schemas (kubernetes-models)
// and KEDA's CRD schemas (@kubernetes-models/keda). Every kind the manifests use must be listed
// here: an object of any other kind fails, so nothing reaches a cluster unvalidated.
//
// These validators check types, formats, enums and required fields; like any JSON Schema made
// from the OpenAPI documents they do not reject unknown fields (the API server does, with
// kubectl's default strict field validation): the invariant tests read the fields that matter.
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import type { RenderedObject } from './kustomize.ts';

/** What every model class offers: its type meta, a guard, and a validating instance. */
interface ModelClass<T> {
  readonly apiVersion: string;
  readonly kind: string;
  is(value: unknown): value is T;
  new (data: T): T & { validate(): void };
}

interface Validator {
  readonly apiVersion: string;
  readonly kind: string;
  validate(obj: RenderedObject, name: string): void;
}

function validator<T>(cls: ModelClass<T>): Validator {
  return {
    apiVersion: cls.apiVersion,
    kind: cls.kind,
    validate(obj, name) {
      if (!cls.is(obj)) throw new Error(`${name}: type meta does not match ${cls.apiVersion} ${cls.kind}`);
      try {
        new cls(obj).validate();
      } catch (err) {
        throw new Error(`${name} (${obj.apiVersion}) is invalid: ${(err as Error).message}`, { cause: err });
      }
    },
  };
}

const VALIDATORS: readonly Validator[] = [
  validator(Namespace),
  validator(ServiceAccount),
  validator(ConfigMap),
  validator(Secret),
  validator(Service),
  validator(Deployment),
  validator(PodDisruptionBudget),
  validator(ScaledObject),
];

/** Throws with the schema's message (e.g. "data/spec/replicas must be integer") when invalid. */
export function validateObject(obj: RenderedObject): void {
  const v = VALIDATORS.find((m) => m.apiVersion === obj.apiVersion && m.kind === obj.kind);
  const name = `${obj.kind} ${obj.metadata?.name ?? '(no name)'}`;
  if (!v) {
    throw new Error(
      `${name}: no schema for ${obj.apiVersion} ${obj.kind}; add its model to test/support/k8s-schema.ts`,
    );
  }
  v.validate(obj, name);
}

/** The one object of this class (validated), or a failure that names what was found. */
export function only<T>(objects: readonly RenderedObject[], cls: ModelClass<T>): T {
  const found = all(objects, cls);
  if (found.length !== 1) throw new Error(`expected one ${cls.kind}, found ${found.length}`);
  return found[0]!;
}

/** Every object of this class, validated and typed. */
export function all<T>(objects: readonly RenderedObject[], cls: ModelClass<T>): T[] {
  return objects
    .filter((o) => o.apiVersion === cls.apiVersion && o.kind === cls.kind)
    .map((o) => {
      validateObject(o);
      if (!cls.is(o)) throw new Error(`unreachable: ${o.kind} failed its guard`);
      return o;
    });
}

export const kinds = {
  Namespace,
  ServiceAccount,
  ConfigMap,
  Secret,
  Service,
  Deployment,
  PodDisruptionBudget,
  ScaledObject,
};

const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
const DECIMAL: Record<string, number> = { m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };

/** A Kubernetes resource quantity ("512Mi", "250m", "1", 2) as a plain number (bytes or cores). */
export function parseQuantity(q: string | number): number {
  if (typeof q === 'number') return q;
  const m = /^(\d+(?:\.\d+)?)([a-zA-Z]*)$/.exec(q.trim());
  const factor = m ? (BINARY[m[2]!] ?? DECIMAL[m[2]!]) : undefined;
  if (!m || factor === undefined) throw new Error(`not a quantity: ${q}`);
  return Number(m[1]) * factor;
}
