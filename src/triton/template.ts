/**
 * Python's `string.Template(text).safe_substitute(values)`, which v0.8.0's fill_template.py
 * uses: `$name` and `${name}` are replaced, `$$` becomes `$`, a placeholder with no value is
 * left as it was. Unlike fill_template.py, this also reports which placeholders were left.
 */
const pattern = /\$(?:(\$)|([_a-zA-Z][_a-zA-Z0-9]*)|\{([_a-zA-Z][_a-zA-Z0-9]*)\})/g;

export interface Filled {
  readonly text: string;
  /** Placeholders found in the template that had no value, in order of first appearance. */
  readonly unfilled: readonly string[];
}

export function safeSubstitute(template: string, values: Readonly<Record<string, string>>): Filled {
  const unfilled: string[] = [];
  const text = template.replace(pattern, (match, escaped: string | undefined, named: string | undefined, braced: string | undefined) => {
    if (escaped) return "$";
    const name = (named ?? braced) as string;
    if (Object.hasOwn(values, name)) return values[name] as string;
    if (!unfilled.includes(name)) unfilled.push(name);
    return match;
  });
  return { text, unfilled };
}

/** Every placeholder a template names, for checking that a set of values covers it. */
export function placeholders(template: string): string[] {
  return [...safeSubstitute(template, {}).unfilled];
}
