/**
 * Runtime validation compiled from the schema definitions in `schema.ts` (TypeBox's compiler):
 * the validator and the static types can never disagree.
 */
import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';

export type Validation<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly path: string; readonly message: string };

export interface Validator<S extends TSchema> {
  (value: unknown): Validation<Static<S>>;
}

export function compileValidator<S extends TSchema>(schema: S): Validator<S> {
  const check: TypeCheck<S> = TypeCompiler.Compile(schema);
  return (value: unknown) => {
    if (check.Check(value)) return { ok: true, value };
    const first = check.Errors(value).First();
    return {
      ok: false,
      path: first?.path || '/',
      message: first ? `${first.path || '/'}: ${first.message}` : 'does not match the schema',
    };
  };
}
