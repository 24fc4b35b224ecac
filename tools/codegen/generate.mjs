// Generates Java, Go and TypeScript models from schemas/ with quicktype and Modelina, as a producer team
// would: quicktype from the JSON Schema files, Modelina from the AsyncAPI document (which refers to them).
// Usage: node generate.mjs <schemas dir> <out dir>. Writes the models and
// prints a JSON summary. Layout: <out>/<go|ts|java>/<qt|mdl>/ (qt: quicktype, mdl: Modelina). tests/contracts/test_codegen.py runs it, checks the types, compiles and round-trips.
import fs from 'node:fs';
import path from 'node:path';
import {
  GO_COMMON_PRESET, GoGenerator, JavaGenerator, TS_COMMON_PRESET, TypeScriptGenerator,
} from '@asyncapi/modelina';
import { Parser, fromFile } from '@asyncapi/parser';
import { FetchingJSONSchemaStore, InputData, JSONSchemaInput, quicktype } from 'quicktype-core';

const [schemasDir, outDir] = process.argv.slice(2);
const TOP_LEVEL = {
  command: 'Command', result: 'Result', dead_letter: 'DeadLetter',
  review_record: 'ReviewRecord', review_decision: 'ReviewDecision',
};
// The settings docs/contracts.md recommends ("Generating code"): without ignoreAdditionalProperties,
// Modelina adds a catch-all `additionalProperties` map of Object/any to every open (published) type.
const MODELINA_PROCESSOR = { interpreter: { ignoreAdditionalProperties: true } };

function write(file, text) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

async function quicktypeRun(lang, rendererOptions) {
  const input = new JSONSchemaInput(new FetchingJSONSchemaStore());
  for (const [file, name] of Object.entries(TOP_LEVEL)) {
    const schema = fs.readFileSync(path.join(schemasDir, `${file}.schema.json`), 'utf8');
    await input.addSource({ name, schema });
  }
  const inputData = new InputData();
  inputData.addInput(input);
  const { lines } = await quicktype({ inputData, lang, rendererOptions });
  return lines.join('\n') + '\n';
}

const summary = { quicktype: {}, modelina: {} };

// quicktype: Java (types only: the Jackson glue needs jars), Go (package qt), TypeScript (with Convert)
const qtJava = await quicktypeRun('java', { 'just-types': 'true', package: 'qt' });
const javaFiles = qtJava.split(/^\/\/ (\w+)\.java$/m).slice(1);
summary.quicktype.java = [];
for (let i = 0; i < javaFiles.length; i += 2) {
  write(path.join(outDir, 'java/qt', `${javaFiles[i]}.java`), javaFiles[i + 1].trimStart());
  summary.quicktype.java.push(javaFiles[i]);
}
write(path.join(outDir, 'go/qt/contracts.go'), await quicktypeRun('go', { package: 'qt' }));
write(path.join(outDir, 'ts/qt/contracts.ts'), await quicktypeRun('typescript', {}));

// Modelina, from the AsyncAPI document
const { document, diagnostics } = await fromFile(new Parser(), path.join(schemasDir, 'asyncapi.yaml')).parse();
if (!document) {
  console.error(JSON.stringify(diagnostics.filter((d) => d.severity === 0), null, 1));
  process.exit(2);
}
const generators = {
  java: [new JavaGenerator({ processorOptions: MODELINA_PROCESSOR }), { packageName: 'mdl' }, 'java'],
  go: [
    new GoGenerator({
      presets: [{ preset: GO_COMMON_PRESET, options: { addJsonTag: true } }],
      processorOptions: MODELINA_PROCESSOR,
    }),
    { packageName: 'mdl' },
    'go',
  ],
  ts: [
    new TypeScriptGenerator({
      modelType: 'class', mapType: 'record', enumType: 'enum',
      presets: [{ preset: TS_COMMON_PRESET, options: { marshalling: true } }],
      processorOptions: MODELINA_PROCESSOR,
    }),
    { exportType: 'named' },
    'ts',
  ],
};
for (const [lang, [generator, options, ext]] of Object.entries(generators)) {
  const models = await generator.generateCompleteModels(document, options);
  summary.modelina[lang] = [];
  for (const model of models) {
    write(path.join(outDir, lang, 'mdl', `${model.modelName}.${ext}`), model.result + '\n');
    summary.modelina[lang].push(model.modelName);
  }
}
console.log(JSON.stringify(summary));
