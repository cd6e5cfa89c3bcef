/** Readable text for an ONNX model: one line per input, initializer summary, node and output. */
import { dtypeFromCode, type ModelProto, type ValueInfoProto, type AttributeProto } from './proto.js';

function typeText(v: ValueInfoProto): string {
  const t = v.type?.tensorType;
  const dims = (t?.shape?.dim ?? []).map((d) => d.dimParam || String(d.dimValue ?? '?'));
  return `${dtypeFromCode(t?.elemType ?? 0) ?? `type${t?.elemType}`}[${dims.join(', ')}]`;
}

function attrText(a: AttributeProto): string {
  const v = a.ints?.length ? `[${a.ints.join(', ')}]` : a.floats?.length ? `[${a.floats.join(', ')}]`
    : a.s?.length ? JSON.stringify(new TextDecoder().decode(a.s)) : a.type === 1 ? String(a.f) : String(a.i);
  return `${a.name}=${v}`;
}

export function dumpModel(model: ModelProto): string {
  const g = model.graph!;
  const lines = [`graph ${g.name} (opset ${model.opsetImport?.[0]?.version}, ir ${model.irVersion})`];
  for (const i of g.input ?? []) lines.push(`  input  ${i.name}: ${typeText(i)}`);
  for (const t of g.initializer ?? []) {
    lines.push(`  init   ${t.name}: ${dtypeFromCode(t.dataType ?? 0)}[${(t.dims ?? []).join(', ')}]`);
  }
  for (const n of g.node ?? []) {
    const attrs = (n.attribute ?? []).map(attrText).join(', ');
    lines.push(`  ${(n.output ?? []).join(', ')} = ${n.opType}(${(n.input ?? []).join(', ')})${attrs ? ` {${attrs}}` : ''}  # ${n.name}`);
  }
  for (const o of g.output ?? []) lines.push(`  output ${o.name}: ${typeText(o)}`);
  return lines.join('\n');
}
