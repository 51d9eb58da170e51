// Copied unchanged from the seed notes (../shared/seed/000_8d92d5a7aa89435e.txt): the
// mini-program client the worker must serve as is. Run by ../wx.mjs.
App({
/*
当小程序初始话完成,会触发onlaunch(全局只触发一次)
*/
onLaunch: function () {
// let that = this
// 登录
this.my_login()
},
my_login:function(){
let that = this
wx.login({
success: res => {
// 发送 res.code 到后台换取 openId, sessionKey, unionId
console.log(res.code)
wx.request({
url: that.globalData.baseurl + "login/",
data: { "code": res.code },
method: "POST",
success(e) {
wx.setStorageSync('token', e.data.data.token)
}
})
}
})
},
/**
* 当小程序启动,或者是重后台进入到前台的时候,会执行onshow,
* 那我们可以通过这个option中的scene值来判断不同进入场景
*/
// onShow:function(option){
// console.log("小程序onshow,:onShow",option)
// },
// /*小程序重前台进入到后台的时候,会触发:onHide*/
// onHide:function(){
// console.log("小程序重前台进入到后台的时候,会触发:onHide")
// },
/**可以在全局使用 */
globalData: {
userInfo: null,
baseurl: "http://127.0.0.1:8000/"
}
})
