import { createApp } from 'vue'
import { createPinia } from 'pinia'
import { ElMessage } from 'element-plus/es'
import App from './App.vue'
import { router } from './router'
import './styles.css'

// One toast at a time: a new message replaces the one shown instead of stacking below it, where
// a few quick actions (save, publish, evaluate, approve) covered the page's own summary line.
for (const type of ['primary', 'success', 'warning', 'info', 'error'] as const) {
  const show = ElMessage[type]
  ElMessage[type] = (...args: Parameters<typeof show>) => {
    ElMessage.closeAll()
    return show(...args)
  }
}

createApp(App).use(createPinia()).use(router).mount('#app')
