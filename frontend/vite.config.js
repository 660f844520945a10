import { defineConfig } from 'vite';
import vue from '@vitejs/plugin-vue';

// `npm run dev` proxies the API and the websockets to a running stack
// (FPESA_NGINX_PORT, default 8888), so the dev server sees the same origin
// layout as nginx gives in production.
const target = 'http://127.0.0.1:' + (process.env.FPESA_NGINX_PORT || '8888');

export default defineConfig({
  plugins: [vue()],
  base: '/',
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false },
  server: {
    proxy: {
      '/api/v1': { target, changeOrigin: false },
      '/ws/v1': { target, ws: true },
    },
  },
  test: {
    environment: 'happy-dom',
    // Generous per-test limits: the suite must pass on a loaded machine.
    testTimeout: 30000,
    hookTimeout: 30000,
    include: ['src/**/*.test.js'],
  },
});
