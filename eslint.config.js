// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.tools/', '.cache/', '.stack/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.strict,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly' } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      // kafkajs' runtime is loaded by src/kafka/kafkajs.ts, after it has swapped in pgsink's
      // record batch decoder; loading it anywhere else first would make that swap fail.
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [
            {
              name: 'kafkajs',
              message: "import kafkajs' values from src/kafka/kafkajs.ts (types may come from 'kafkajs')",
              allowTypeImports: true,
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/kafka/kafkajs.ts'],
    rules: { '@typescript-eslint/no-restricted-imports': 'off' },
  },
);
