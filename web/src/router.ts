import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'
import { setUnauthorizedHandler } from './api/http'
import { useAuth } from './stores/auth'

declare module 'vue-router' {
  interface RouteMeta {
    title?: string
    perm?: string | string[]
    public?: boolean
  }
}

const APP_TITLE = '颐养 · 养老服务管理平台'

const routes: RouteRecordRaw[] = [
  { path: '/self-check', name: 'self-check', component: () => import('./modules/assessment/SelfCheckView.vue'), meta: { public: true, title: '老年人能力自测' } },
  { path: '/services', name: 'services', component: () => import('./modules/catalog/ServicesView.vue'), meta: { public: true, title: '基本养老服务目录' } },
  { path: '/vacancies', name: 'vacancies', component: () => import('./modules/institution/VacanciesView.vue'), meta: { public: true, title: '养老机构空床信息' } },
  { path: '/home-care', name: 'home-care', component: () => import('./modules/home_service/FamilyVisitsView.vue'), meta: { public: true, title: '居家上门服务查询' } },
  { path: '/queue-place', name: 'queue-place', component: () => import('./modules/institution/QueuePlaceView.vue'), meta: { public: true, title: '入住轮候查询' } },
  // Phone pages for people in the field: full screen, no console menu.
  { path: '/m/meals', name: 'meal-counter', component: () => import('./modules/home_service/MealCounterView.vue'), meta: { title: '助餐登记', perm: 'home_service.meal' } },
  { path: '/m/care-visits', name: 'my-care-visits', component: () => import('./modules/care_visit/MyCareVisitsView.vue'), meta: { title: '我的探访', perm: 'care_visit.record' } },
  { path: '/m/visits', name: 'my-visits', component: () => import('./modules/home_service/MyVisitsView.vue'), meta: { title: '今日上门', perm: 'home_service.visit' } },
  { path: '/login', name: 'login', component: () => import('./modules/identity/LoginView.vue'), meta: { public: true, title: '登录' } },
  {
    path: '/',
    component: () => import('./layout/AppLayout.vue'),
    children: [
      { path: '', name: 'home', component: () => import('./layout/HomeView.vue'), meta: { title: '工作台' } },
      { path: 'elders', name: 'elders', component: () => import('./modules/registry/ElderListView.vue'), meta: { title: '老年人档案', perm: 'registry.read' } },
      { path: 'elders/:id', name: 'elder', component: () => import('./modules/registry/ElderDetailView.vue'), meta: { title: '老年人详情', perm: 'registry.read' } },
      { path: 'elders/:id/assess', name: 'assess', component: () => import('./modules/assessment/AssessFormView.vue'), meta: { title: '能力评估', perm: 'assessment.record' } },
      { path: 'elders/:id/assessments/:aid', name: 'assessment-report', component: () => import('./modules/assessment/AssessReportView.vue'), meta: { title: '评估报告', perm: 'registry.read' } },
      { path: 'assessments/import', name: 'assessments-import', component: () => import('./modules/registry/ImportView.vue'), props: { kind: 'assessment' }, meta: { title: '评估导入', perm: 'assessment.record' } },
      { path: 'assessments/due', name: 'assessments-due', component: () => import('./modules/assessment/DueView.vue'), meta: { title: '评估任务', perm: 'assessment.record' } },
      { path: 'catalog', name: 'catalog', component: () => import('./modules/catalog/CatalogView.vue'), meta: { title: '服务目录', perm: 'catalog.manage' } },
      { path: 'orgs', name: 'orgs', component: () => import('./modules/org/OrgsView.vue'), meta: { title: '服务机构', perm: 'aggregates.read' } },
      { path: 'admission-queue', name: 'admission-queue', component: () => import('./modules/institution/QueueView.vue'), meta: { title: '入住轮候', perm: 'institution.manage' } },
      { path: 'service-orders', name: 'service-orders', component: () => import('./modules/home_service/ServiceOrdersView.vue'), meta: { title: '居家服务', perm: 'home_service.manage' } },
      { path: 'emergency', name: 'emergency', component: () => import('./modules/emergency/BoardView.vue'), meta: { title: '接警台', perm: 'emergency.handle' } },
      { path: 'care-visits', name: 'care-visits', component: () => import('./modules/care_visit/CareVisitsView.vue'), meta: { title: '探访关爱', perm: 'care_visit.record' } },
      { path: 'devices', name: 'devices', component: () => import('./modules/emergency/DevicesView.vue'), meta: { title: '呼叫设备', perm: 'emergency.handle' } },
      { path: 'home-settlements', name: 'home-settlements', component: () => import('./modules/home_service/SettlementsView.vue'), meta: { title: '服务结算', perm: 'home_service.manage' } },
      { path: 'bed-claims', name: 'bed-claims', component: () => import('./modules/institution/ClaimsView.vue'), meta: { title: '床位补贴', perm: ['aggregates.read', 'institution.manage'] } },
      { path: 'orgs/:id', name: 'org-beds', component: () => import('./modules/institution/BedsView.vue'), meta: { title: '机构详情', perm: ['aggregates.read', 'institution.manage'] } },
      // A home's manager: her own home.
      { path: 'my-org', name: 'my-org', redirect: () => `/orgs/${useAuth().me?.org_id ?? ''}` },
      { path: 'indicators', name: 'indicators', component: () => import('./modules/indicator/IndicatorsView.vue'), meta: { title: '重点指标', perm: 'aggregates.read' } },
      { path: 'import', name: 'import', component: () => import('./modules/registry/ImportView.vue'), meta: { title: '批量导入', perm: 'registry.import' } },
      { path: 'audit', name: 'audit', component: () => import('./modules/audit/AuditView.vue'), meta: { title: '审计日志', perm: 'audit.read' } },
      { path: 'users', name: 'users', component: () => import('./modules/identity/UsersView.vue'), meta: { title: '用户管理', perm: 'users.manage' } },
      { path: 'password', name: 'password', component: () => import('./modules/identity/PasswordView.vue'), meta: { title: '修改密码' } },
      { path: ':pathMatch(.*)*', name: 'not-found', component: () => import('./layout/NotFoundView.vue'), meta: { title: '页面不存在' } },
    ],
  },
]

export const router = createRouter({
  history: createWebHistory('/'),
  routes,
  scrollBehavior: () => ({ top: 0 }),
})

router.beforeEach(async (to) => {
  const auth = useAuth()
  if (!auth.probed) await auth.probe()
  if (to.meta.public) {
    return auth.loggedIn && to.name === 'login' ? { path: '/' } : true
  }
  if (!auth.loggedIn) {
    return { name: 'login', query: to.fullPath !== '/' ? { redirect: to.fullPath } : {} }
  }
  // A password someone else set is replaced before anything else.
  if (auth.me?.must_change_password && to.name !== 'password') {
    return { name: 'password' }
  }
  // A caregiver's work is her visits, on her phone.
  if (to.name === 'home' && auth.can('home_service.visit')) {
    return { name: 'my-visits' }
  }
  // A village worker's work is her visits, on her phone (a town's workers keep the console).
  if (to.name === 'home' && auth.can('care_visit.record') && !auth.can('care_visit.manage') && !auth.me?.region_code?.endsWith('000')) {
    return { name: 'my-care-visits' }
  }
  // A meal point's counter works at its counter.
  if (to.name === 'home' && auth.can('home_service.meal') && !auth.can('home_service.manage')) {
    return { name: 'meal-counter' }
  }
  // The 12349 operator's work is the board (an officer, who also may handle events, keeps her workbench).
  if (to.name === 'home' && auth.can('emergency.handle') && !auth.can('registry.edit')) {
    return { name: 'emergency' }
  }
  if (to.meta.perm && !auth.can(to.meta.perm)) {
    ElMessage.warning('没有访问该页面的权限')
    return { path: '/' }
  }
  return true
})

router.afterEach((to) => {
  document.title = to.meta.title && to.name !== 'login' ? `${to.meta.title} - ${APP_TITLE}` : APP_TITLE
})

// Session expired or revoked in the middle of work: back to the login page, then return here.
setUnauthorizedHandler(() => {
  const auth = useAuth()
  auth.clear()
  const cur = router.currentRoute.value
  if (cur.name !== 'login') {
    router.replace({ name: 'login', query: cur.fullPath !== '/' ? { redirect: cur.fullPath } : {} })
  }
})
